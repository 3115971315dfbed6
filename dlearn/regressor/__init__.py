"""The regressor of paper section 5: a ResNet trained on the registrations, and its predictions."""
