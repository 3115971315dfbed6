"""`dlearn <stage>`: one subcommand per workflow rule, each runnable alone with explicit paths.

Each stage's options are a dataclass in its module; its flags are generated from the fields
(:mod:`dlearn.options`), so the flag, the config key and the field share one name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dlearn import __version__
from dlearn.errors import InputError
from dlearn.options import add_options, check_options, options_from_args

log = logging.getLogger("dlearn")

Handler = Callable[[argparse.Namespace], None]


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for the flags outside the options dataclasses: an integer >= ``minimum``
    (argparse's error names the flag)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    parse.__name__ = "int"  # argparse's "invalid int value" for a non-integer
    return parse


def _add_keypoint_regressor(p: argparse.ArgumentParser) -> None:
    """The COCO keypoints' regressor flag of every stage that computes the model's keypoints."""
    p.add_argument(
        "--keypoint-regressor", type=Path,
        help="COCO keypoint regressor .npy of the body model (config body.keypoint_regressor): (17, N) in "
        "COCO's order or (19, N) in HMR's cocoplus order (default: the model file's, else face vertices "
        "and skeleton joints, with a warning)",
    )  # fmt: skip


def _make_body(args: argparse.Namespace) -> None:
    from dlearn.body.standin import write_standin

    model_path, uv_path = write_standin(args.out, preview=True)
    log.info("wrote %s, %s and %s", model_path, uv_path, args.out / "preview.png")


def _body_model(args: argparse.Namespace) -> None:
    from dlearn.body.prepare import prepare_body_files

    prepare_body_files(args.model, args.uv, args.out_model, args.out_uv, args.out_preview)


def _synth(args: argparse.Namespace) -> None:
    from dlearn.data.synth import SynthOptions, synthesize

    synthesize(
        args.body_model, args.uv, args.out, options_from_args(args, SynthOptions), keypoint_regressor=args.keypoint_regressor
    )


def _crops(args: argparse.Namespace) -> None:
    from dlearn.data.crops import CropOptions, make_crops

    make_crops(args.annotations, args.image_root, args.out, options_from_args(args, CropOptions))


def _densepose_predictions(args: argparse.Namespace) -> None:
    from dlearn.densepose.predictions import PredictionOptions, write_predictions_dataset

    if (args.iuv_dir is None) == (args.dump is None):
        raise InputError("densepose-predictions: give either --iuv-dir (IUV PNGs) or --dump (apply_net dumps)")
    summary = write_predictions_dataset(
        args.keypoints, args.iuv_dir, args.image_root, args.out, options_from_args(args, PredictionOptions),
        allow_absolute_paths=args.allow_absolute_paths, dump=args.dump,
    )  # fmt: skip
    log.info("%s: %s", args.out, summary)


def _mix_datasets(args: argparse.Namespace) -> None:
    from dlearn.densepose.mix import mix_datasets

    sources = [(name, Path(path), Path(root), naming) for name, path, root, naming in args.source]
    summary = mix_datasets(sources, args.out, args.image_root)
    log.info("%s: %s", args.out, summary)


def _add_mix_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mix-datasets",
        help="stage mix_datasets: several DensePose-COCO files -> one, sample ids keeping their source",
        description="Concatenate DensePose-COCO files (dataset.kind: mixed): ids renumbered, each annotation's "
        "sample id '<source>-<image id>_<annotation id>' kept in dlearn_sample_id, file names made relative "
        "to --image-root (a folder holding every source's image root).",
    )
    p.add_argument("--source", nargs=4, action="append", required=True,
                   metavar=("NAME", "JSON", "IMAGE_ROOT", "KEYPOINT_NAMES"),
                   help="a source: its name (sample-id prefix), DensePose-COCO file, image root and keypoint naming "
                   "(coco or posetrack); repeat per source")  # fmt: skip
    p.add_argument("--image-root", type=Path, required=True, help="folder the mixed file_name entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output DensePose-COCO JSON")
    p.set_defaults(handler=_mix_datasets)


def _match(args: argparse.Namespace) -> None:
    from dlearn.body.io import load_body_model
    from dlearn.densepose.match import MatchOptions, match_correspondences

    num_vertices = load_body_model(args.body_model).num_vertices
    match_correspondences(
        args.annotations, args.crops, args.uv, args.out, options_from_args(args, MatchOptions), num_vertices
    )


def _register(args: argparse.Namespace) -> None:
    from dlearn.registration.stage import RegistrationOptions, register

    register(
        args.correspondences,
        args.crops,
        args.body_model,
        args.out,
        options_from_args(args, RegistrationOptions),
        depths=args.depths,
        init=args.init,
        previous=args.previous,
        shard=args.shard,
        num_shards=args.num_shards,
        checkpoint_dir=args.checkpoint_dir,
        keypoint_regressor=args.keypoint_regressor,
    )


def _merge_registration(args: argparse.Namespace) -> None:
    from dlearn.registration.overlay import write_overlay
    from dlearn.registration.stage import merge_registration

    merge_registration(args.shards, args.correspondences, args.out)
    if args.overlay is not None:
        if args.crops is None or args.body_model is None or args.uv is None:
            raise ValueError("--overlay needs --crops, --body-model and --uv")
        write_overlay([("registration", args.out)], args.crops, args.body_model, args.uv, args.overlay)


def _cgan_train(args: argparse.Namespace) -> None:
    from dlearn.cgan.evaluate import plot_training_curve
    from dlearn.cgan.train import CganOptions, train_cgan

    summary = train_cgan(args.crops, args.out, args.checkpoint_dir, options_from_args(args, CganOptions))
    if args.curve is not None:
        plot_training_curve(summary["curve"], args.curve)


def _cgan_predict(args: argparse.Namespace) -> None:
    from dlearn.cgan.train import predict_depths

    predict_depths(args.model, args.crops, args.out, device=args.device)


def _cgan_evaluate(args: argparse.Namespace) -> None:
    import json

    from dlearn.cgan.evaluate import evaluate_depths

    report = evaluate_depths(args.depths, args.crops, args.gt, train_depths_path=args.train_depths)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("cGAN depth MPJPE (mm): %s", report["mpjpe_mm"])


def _true_depths(args: argparse.Namespace) -> None:
    from dlearn.cgan.evaluate import true_depths

    true_depths(args.crops, args.gt, args.out)


def _add_cgan_train(sub: argparse._SubParsersAction) -> None:
    from dlearn.cgan.train import CganOptions

    p = sub.add_parser(
        "cgan-train",
        help="stage cgan_train: Kudo et al.'s cGAN lifting 2D keypoints to depths, from 2D only",
        description="Train the depth generator on the train split's 2D keypoints (never on 3D). "
        "Checkpoints every epoch; a killed run resumes from the last one.",
    )
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr (keypoints)")
    p.add_argument("--out", type=Path, required=True, help="output model.pt")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints")
    p.add_argument("--curve", type=Path, help="also plot the training curve to this PNG")
    add_options(p, CganOptions)
    p.set_defaults(handler=_cgan_train)


def _add_cgan_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cgan-predict",
        help="stage cgan_predict: root-relative keypoint depths for every sample of a split",
        description="Depths of the 17 keypoints in normalised crop units, relative to the mid-hip, "
        "camera z away from the viewer (the registration's frame).",
    )
    p.add_argument("--model", type=Path, required=True, help="cgan model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr")
    p.add_argument("--out", type=Path, required=True, help="output depths_{split}.zarr")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.set_defaults(handler=_cgan_predict)


def _add_cgan_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cgan-evaluate",
        help="stage cgan_evaluate: MPJPE of GT 2D + cGAN depth against zero and mean depth (synthetic data)",
        description="Accuracy of the cGAN depths where 3D is known, against two baselines computed "
        "the same way: zero depth and the train split's mean depth per keypoint.",
    )
    p.add_argument("--depths", type=Path, required=True, help="depths_test.zarr")
    p.add_argument("--crops", type=Path, required=True, help="crops_test.zarr")
    p.add_argument("--gt", type=Path, required=True, help="gt_test.zarr")
    p.add_argument("--train-depths", type=Path, help="depths_train.zarr (mean-depth baseline)")
    p.add_argument("--out", type=Path, required=True, help="output evaluation JSON")
    p.set_defaults(handler=_cgan_evaluate)


def _add_true_depths(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "true-depths",
        help="stage true_depths: the ground truth's keypoint depths in the cGAN's format (synthetic data)",
        description="Root-relative depths of the 17 keypoints from gt_{split}.zarr, in the frame and "
        "units of cgan-predict, so that the registration and the regressor can run with perfect depths "
        "(config depth_source: ground_truth): what a better depth source could give.",
    )
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr (crop boxes)")
    p.add_argument("--gt", type=Path, required=True, help="gt_{split}.zarr")
    p.add_argument("--out", type=Path, required=True, help="output true_depths_{split}.zarr")
    p.set_defaults(handler=_true_depths)


def _add_register(sub: argparse._SubParsersAction) -> None:
    from dlearn.registration.stage import RegistrationOptions

    p = sub.add_parser(
        "register",
        help="stage register: fit the body to dense correspondences and keypoints (one shard of round k)",
        description="Deformable registration (paper section 4) of one shard of the train split. Round 0 "
        "starts from the T-pose; later rounds from --init (the previous round's predictions).",
    )
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr")
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr (keypoints)")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    p.add_argument("--out", type=Path, required=True, help="output shard store")
    p.add_argument("--depths", type=Path, help="cGAN depths_train.zarr (the key-point loss's z term)")
    p.add_argument("--init", type=Path, help="round k >= 1: the previous round's predictions_train.zarr")
    p.add_argument("--previous", type=Path, help="round k >= 1: the previous round's registration.zarr (keep-best)")
    p.add_argument("--shard", type=_int_at_least(0), default=0, help="shard index (default: 0)")
    p.add_argument("--num-shards", type=_int_at_least(1), default=1, help="number of shards (default: 1)")
    p.add_argument("--checkpoint-dir", type=Path, help="finished chunks, kept until the output is written")
    _add_keypoint_regressor(p)
    add_options(p, RegistrationOptions)
    p.set_defaults(handler=_register)


def _add_merge_registration(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge-registration",
        help="stage merge_registration: concatenate the shard stores of round k",
        description="Concatenate registration shard stores, checking they cover every sample once, in order.",
    )
    p.add_argument("--shards", type=Path, nargs="+", required=True, help="shard stores, in shard order")
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr")
    p.add_argument("--out", type=Path, required=True, help="output registration.zarr")
    p.add_argument("--overlay", type=Path, help="also draw fitted meshes over their crops into this PNG")
    p.add_argument("--crops", type=Path, help="crops_train.zarr (for --overlay)")
    p.add_argument("--body-model", type=Path, help="SMPL-format body model file (for --overlay)")
    p.add_argument("--uv", type=Path, help="UV_Processed.mat (for --overlay: part colours)")
    p.set_defaults(handler=_merge_registration)


def _regress(args: argparse.Namespace) -> None:
    from dlearn.regressor.train import RegressorOptions, plot_regressor_curve, train_regressor

    summary = train_regressor(
        args.crops,
        args.correspondences,
        args.registration,
        args.body_model,
        args.out,
        args.checkpoint_dir,
        options_from_args(args, RegressorOptions),
        depths=args.depths,
        init_model=args.init_model,
        keypoint_regressor=args.keypoint_regressor,
    )
    if args.curve is not None:
        plot_regressor_curve(summary["curve"], args.curve)


def _predict(args: argparse.Namespace) -> None:
    from dlearn.regressor.train import predict

    predict(
        args.model, args.crops, args.body_model, args.out, device=args.device, batch_size=args.batch_size,
        workers=args.workers,
    )  # fmt: skip


def _add_regress(sub: argparse._SubParsersAction) -> None:
    from dlearn.regressor.train import RegressorOptions

    p = sub.add_parser(
        "regress",
        help="stage regress: train the ResNet regressor on round k's registrations",
        description="Train the regressor (paper section 5) on the train split's crops with the round's "
        "registrations as targets. Per-epoch checkpoints in --checkpoint-dir make a killed run resume.",
    )
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr")
    p.add_argument("--correspondences", type=Path, required=True, help="correspondences_train.zarr (L_dense)")
    p.add_argument("--registration", type=Path, required=True, help="the round's registration.zarr (targets)")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    p.add_argument("--out", type=Path, required=True, help="output model.pt")
    p.add_argument("--checkpoint-dir", type=Path, required=True, help="per-epoch checkpoints (resume)")
    p.add_argument("--depths", type=Path, help="cGAN depths_train.zarr (L_KP's depth term)")
    p.add_argument("--init-model", type=Path, help="warm start from this model.pt (the previous round's)")
    p.add_argument("--curve", type=Path, help="also plot the training curve into this PNG")
    _add_keypoint_regressor(p)
    add_options(p, RegressorOptions)
    p.set_defaults(handler=_regress)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="stage predict: the regressor's theta for every crop of a split",
        description="Predict pose, scales and camera for every crop of a split with a trained regressor; "
        "the store has the registration store's layout.",
    )
    p.add_argument("--model", type=Path, required=True, help="regressor model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file (joints)")
    p.add_argument("--out", type=Path, required=True, help="output predictions_{split}.zarr")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument(
        "--batch-size", type=_int_at_least(1), default=64, help="crops per forward pass (default: 64)"
    )
    p.add_argument(
        "--workers", type=_int_at_least(0), default=0, help="DataLoader worker processes (default: 0)"
    )
    p.set_defaults(handler=_predict)


def _evaluate(args: argparse.Namespace) -> None:
    from dlearn.evaluation.evaluate import evaluate_round, write_evaluation

    report = evaluate_round(
        args.round,
        args.body_model,
        {"train": args.crops_train, "test": args.crops_test},
        {"train": args.gt_train, "test": args.gt_test},
        args.registration,
        {"train": args.predictions_train, "test": args.predictions_test},
        cgan_depths=args.cgan_depths,
        bone_scaling=args.bone_scaling,
        keypoint_regressor=args.keypoint_regressor,
    )
    write_evaluation(report, args.out_json, args.out_csv)
    for split, by_source in report["results"].items():
        for source, metrics in by_source.items():
            shown = {m: round(v["mean"], 1) for m, v in metrics.items() if "mpjpe" in m}
            log.info("round %d %s %s: %s mm", args.round, split, source, shown)


def _report(args: argparse.Namespace) -> None:
    from dlearn.evaluation.report import export_meshes, gather_evaluations, plot_history, plot_losses
    from dlearn.registration.overlay import write_overlay

    per_round = (args.registrations, args.predictions, args.test_predictions, args.regressors, args.overlays)
    if len({len(files) for files in per_round}) != 1:
        raise ValueError(
            "--registrations, --predictions, --test-predictions, --regressors and --overlays need one "
            f"entry per round, got {[len(files) for files in per_round]}"
        )
    rows = gather_evaluations(args.evaluations, args.summary)
    plot_history(rows, args.history)
    plot_losses(args.regressors, args.registrations, args.losses)
    for registration, predictions, png in zip(args.registrations, args.predictions, args.overlays):
        write_overlay(
            [("registration", registration), ("ConvNet", predictions)], args.crops, args.body_model, args.uv, png,
            num=args.overlay_samples,
        )  # fmt: skip
    for k, predictions in enumerate(args.test_predictions):
        export_meshes(predictions, args.body_model, args.meshes, args.meshes_per_round, prefix=f"round{k}_")
    args.meshes.mkdir(parents=True, exist_ok=True)


def _add_bone_scaling(p: argparse.ArgumentParser, average_of: str) -> None:
    p.add_argument("--bone-scaling", default="canonical_average",
                   choices=["canonical_average", "both_to_rest", "ground_truth"],
                   help="bone-scaled MPJPE: canonical_average (the paper's: only the prediction, to the mean "
                   f"bone-length sum of {average_of}), both_to_rest (prediction and ground truth to the body "
                   "model's rest skeleton) or ground_truth (the prediction to each ground truth)")  # fmt: skip


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="stage evaluate: 3D joint errors of round k's registrations, predictions and the cGAN",
        description="MPJPE (plain, bone-scaled, Procrustes) against synthetic ground truth; writes "
        "evaluation.json (per joint) and evaluation.csv (round,split,source,metric,value).",
    )
    p.add_argument("--round", type=int, required=True, help="round k")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    for split in ("train", "test"):
        p.add_argument(f"--crops-{split}", type=Path, required=True, help=f"crops_{split}.zarr")
        p.add_argument(f"--gt-{split}", type=Path, required=True, help=f"gt_{split}.zarr")
        p.add_argument(f"--predictions-{split}", type=Path, required=True, help=f"predictions_{split}.zarr")
    p.add_argument("--registration", type=Path, required=True, help="the round's registration.zarr")
    p.add_argument("--cgan-depths", type=Path, help="cGAN depths_test.zarr (adds the cGAN's rows)")
    _add_bone_scaling(p, "the train split's ground truth")
    _add_keypoint_regressor(p)
    p.add_argument("--out-json", type=Path, required=True, help="output evaluation.json")
    p.add_argument("--out-csv", type=Path, required=True, help="output evaluation.csv")
    p.set_defaults(handler=_evaluate)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="stage report: summary table, MPJPE history (paper Fig. 2), overlays, meshes, loss curves",
        description="Gather every round's outputs into the run's report; lists are in round order.",
    )
    p.add_argument("--evaluations", type=Path, nargs="*", default=[], help="every round's evaluation.csv")
    p.add_argument("--summary", type=Path, required=True, help="output summary.csv (header only without evaluations)")
    p.add_argument("--history", type=Path, required=True, help="output mpjpe_history.png")
    p.add_argument("--registrations", type=Path, nargs="+", required=True, help="every round's registration.zarr")
    p.add_argument("--predictions", type=Path, nargs="+", required=True, help="every round's predictions_train.zarr")
    p.add_argument("--test-predictions", type=Path, nargs="+", required=True, help="every round's predictions_test.zarr")
    p.add_argument("--regressors", type=Path, nargs="+", required=True, help="every round's regressor model.pt")
    p.add_argument("--crops", type=Path, required=True, help="crops_train.zarr")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat (part colours)")
    p.add_argument("--overlays", type=Path, nargs="+", required=True, help="output overlay PNG per round")
    p.add_argument("--losses", type=Path, required=True, help="output loss curves PNG")
    p.add_argument("--meshes", type=Path, required=True, help="output folder of .obj meshes")
    p.add_argument(
        "--overlay-samples", type=_int_at_least(1), default=8, help="samples per overlay (default: 8)"
    )
    p.add_argument(
        "--meshes-per-round", type=_int_at_least(0), default=4, help="test meshes per round (default: 4)"
    )
    p.set_defaults(handler=_report)


def _check_data(args: argparse.Namespace) -> None:
    import json

    from dlearn.check import check_config

    if (args.config is None) == (args.config_json is None):
        raise ValueError("give one of --config and --config-json")
    source = args.config if args.config is not None else "--config-json"
    report = check_config(args.config if args.config is not None else json.loads(args.config_json))
    for line in report.checked:
        log.info("ok: %s", line)
    for line in report.problems:
        log.error("problem: %s", line)
    log.info("%s: %s", source, report.summary())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join([*(f"ok: {c}" for c in report.checked), report.summary()]) + "\n")
    if report.problems:
        raise ValueError(f"{source}: {len(report.problems)} input problems (listed above)")


def _add_check_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-data",
        help="stage check_data: check every input a config names before anything runs",
        description="Body model and UV file, annotation files and the images they reference: one line "
        "per problem naming the file and record, then a summary; exit status 1 on any problem.",
    )
    p.add_argument("--config", type=Path, help="workflow config file (config.yaml)")
    p.add_argument("--config-json", help="the config's body, dataset and crops blocks as JSON (the workflow's rule)")
    p.add_argument("--out", type=Path, help="write the list of checked inputs here when all is well")
    p.set_defaults(handler=_check_data)


def _h36m_crops(args: argparse.Namespace) -> None:
    from dlearn.data.crops import CropOptions
    from dlearn.evaluation.h36m import make_h36m_crops

    options = CropOptions(image_size=args.image_size, box_scale=args.box_scale, workers=1)
    check_options(options)
    make_h36m_crops(args.npz, args.image_root, args.out, options)


def _evaluate_h36m(args: argparse.Namespace) -> None:
    from dlearn.evaluation.evaluate import write_evaluation
    from dlearn.evaluation.h36m import evaluate_h36m

    report = evaluate_h36m(
        args.round, args.predictions, args.npz, args.joint_regressor, args.body_model, bone_scaling=args.bone_scaling,
        train_npz=args.train_npz, max_skipped=args.max_skipped,
    )  # fmt: skip
    write_evaluation(report, args.out_json, args.out_csv)
    shown = {m: round(v["mean"], 1) for m, v in report["results"]["h36m"]["convnet"].items()}
    log.info("round %d Human3.6M ConvNet: %s mm", args.round, shown)


def _add_h36m(sub: argparse._SubParsersAction) -> None:
    from dlearn.data.crops import CropOptions

    p = sub.add_parser(
        "h36m-crops",
        help="stage h36m_crops: crops of the Human3.6M evaluation frames of a SPIN-style npz",
        description="Square crops of every frame of the npz, framed like the training crops: side = box_scale x "
        "the person's box (scale x 200 / 0.9: SPIN's boxes are 0.9 x the person's mask box) around center.",
    )
    p.add_argument("--npz", type=Path, required=True, help="SPIN-style evaluation .npz (imgname, center, scale, S)")
    p.add_argument("--image-root", type=Path, required=True, help="folder the npz's imgname entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output crops_h36m.zarr")
    p.add_argument("--image-size", type=int, default=64, help="crop side in pixels (the regressor's input)")
    p.add_argument("--box-scale", type=float, default=CropOptions.box_scale,
                   help="crop side relative to the person's box: the training crops' crops.box_scale "
                   f"(default: {CropOptions.box_scale})")  # fmt: skip
    p.set_defaults(handler=_h36m_crops)
    p = sub.add_parser(
        "evaluate-h36m",
        help="stage evaluate_h36m: round k's ConvNet on Human3.6M (Protocol #1, 14 LSP joints)",
        description="MPJPE (root-aligned, bone-scaled, Procrustes) of the predictions on the npz's frames, "
        "joints from a J_regressor_h36m .npy.",
    )
    p.add_argument("--round", type=int, required=True, help="round k")
    p.add_argument("--predictions", type=Path, required=True, help="predictions_h36m.zarr")
    p.add_argument("--npz", type=Path, required=True, help="SPIN-style evaluation .npz")
    p.add_argument("--joint-regressor", type=Path, required=True, help="J_regressor_h36m.npy (17 x vertices)")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    _add_bone_scaling(p, "the --train-npz frames (without one: the rest skeleton's)")
    p.add_argument("--train-npz", type=Path, help="SPIN-style training npz (h36m_train.npz, S1, S5-S8): its S "
                   "gives the canonical average skeleton")  # fmt: skip
    p.add_argument("--max-skipped", type=float, default=0.01,
                   help="fraction of frames that may lack a joint before the evaluation fails (default: 0.01)")  # fmt: skip
    p.add_argument("--out-json", type=Path, required=True, help="output evaluation_h36m.json")
    p.add_argument("--out-csv", type=Path, required=True, help="output evaluation_h36m.csv")
    p.set_defaults(handler=_evaluate_h36m)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    from dlearn.data.synth import SynthOptions

    p = sub.add_parser(
        "synth",
        help="stage synth: synthetic DensePose-COCO-format dataset with exact 3D ground truth",
        description="Render posed, scaled bodies into images and write DensePose-COCO annotations "
        "(densepose_{train,test}.json), images, ground truth (gt_{split}.zarr) and a contact sheet.",
    )
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat of the body model")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    _add_keypoint_regressor(p)
    add_options(p, SynthOptions)
    p.set_defaults(handler=_synth)


def _add_crops(sub: argparse._SubParsersAction) -> None:
    from dlearn.data.crops import CropOptions

    p = sub.add_parser(
        "crops",
        help="stage crops: square person crops and keypoints in normalised crop coordinates",
        description="Cut every kept person out of its image (square box with margin, resized) into "
        "a zarr store with the keypoints in normalised crop coordinates.",
    )
    p.add_argument("--annotations", type=Path, required=True, help="DensePose-COCO JSON file")
    p.add_argument("--image-root", type=Path, required=True, help="folder the JSON's file_name entries are in")
    p.add_argument("--out", type=Path, required=True, help="output crops_{split}.zarr")
    add_options(p, CropOptions)
    p.set_defaults(handler=_crops)


def _add_densepose_predictions(sub: argparse._SubParsersAction) -> None:
    from dlearn.densepose.predictions import PredictionOptions

    p = sub.add_parser(
        "densepose-predictions",
        help="stage densepose_predictions: DensePose IUV maps + COCO keypoints -> DensePose-COCO JSON",
        description="Per person of the keypoint file, a seeded subset of the pixels of its IUV instance "
        "(<image>_IUV.png, <image>_INDS.png as DensePose's infer_simple.py writes them, or detectron2 DensePose's "
        "apply_net.py dump) as dense points, "
        "written as a DensePose-COCO annotation file that crops and match read.",
    )
    p.add_argument("--keypoints", type=Path, required=True,
                   help="COCO-format keypoint file (images, annotations), or a SPIN-style .npz (imgname, center, scale, part)")
    p.add_argument("--iuv-dir", type=Path, help="folder of the _IUV.png and _INDS.png files")
    p.add_argument("--dump", type=Path,
                   help="instead of --iuv-dir: a detectron2 DensePose `apply_net.py dump` file, or a folder of them (*.pkl)")
    p.add_argument("--image-root", type=Path, required=True, help="folder the file_name entries are relative to")
    p.add_argument("--out", type=Path, required=True, help="output DensePose-COCO JSON")
    p.add_argument("--allow-absolute-paths", action=argparse.BooleanOptionalAction, default=False,
                   help="accept file_name entries that are absolute or leave the image root (default: False)")  # fmt: skip
    add_options(p, PredictionOptions)
    p.set_defaults(handler=_densepose_predictions)


def _add_match(sub: argparse._SubParsersAction) -> None:
    from dlearn.densepose.match import MatchOptions

    p = sub.add_parser(
        "match",
        help="stage match: nearest body vertex in (U, V) of its part for every dense point",
        description="UV-to-vertex matching (paper section 6.1): one KD-tree per part over the chart "
        "vertices; writes correspondences_{split}.zarr (CSR) aligned with the crops store.",
    )
    p.add_argument("--annotations", type=Path, required=True, help="DensePose-COCO JSON file")
    p.add_argument("--crops", type=Path, required=True, help="crops_{split}.zarr of the same split")
    p.add_argument("--body-model", type=Path, required=True, help="SMPL-format body model file")
    p.add_argument("--uv", type=Path, required=True, help="UV_Processed.mat of the body model")
    p.add_argument("--out", type=Path, required=True, help="output correspondences_{split}.zarr")
    add_options(p, MatchOptions)
    p.set_defaults(handler=_match)


def _add_make_body(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-body",
        help="write the procedural stand-in body (SMPL_NEUTRAL.pkl, UV_Processed.mat, preview.png)",
        description="Write the procedural stand-in humanoid in SMPL's file format, its DensePose-format "
        "UV charts and a preview PNG into a folder. Deterministic: same bytes every run.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(handler=_make_body)


def _add_body_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "body-model",
        help="stage body_model: write the stand-in, or check and link the user's SMPL and UV files",
        description="Workflow stage body_model. With --model standin --uv standin the procedural stand-in "
        "is written; otherwise the SMPL-format model and UV_Processed.mat are checked (keys, shapes, "
        "vertex ids) and linked to the output paths.",
    )
    p.add_argument("--model", required=True, help='"standin" or an SMPL-format .pkl/.npz file')
    p.add_argument("--uv", required=True, help='"standin" or DensePose\'s UV_Processed.mat')
    p.add_argument("--out-model", type=Path, required=True, help="output model path (file or link)")
    p.add_argument("--out-uv", type=Path, required=True, help="output UV charts path (file or link)")
    p.add_argument("--out-preview", type=Path, required=True, help="output preview PNG")
    p.set_defaults(handler=_body_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlearn",
        description="Deform-and-learn: 3D body shape and pose from dense correspondences. "
        "Each subcommand is one stage of the Snakemake workflow.",
    )
    parser.add_argument("--version", action="version", version=f"dlearn {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level"
    )
    sub = parser.add_subparsers(title="stages", dest="stage", required=True, metavar="STAGE")
    for add in (
        _add_check_data,
        _add_make_body,
        _add_body_model,
        _add_synth,
        _add_crops,
        _add_densepose_predictions,
        _add_mix_datasets,
        _add_match,
        _add_cgan_train,
        _add_cgan_predict,
        _add_true_depths,
        _add_cgan_evaluate,
        _add_register,
        _add_merge_registration,
        _add_regress,
        _add_predict,
        _add_evaluate,
        _add_report,
        _add_h36m,
    ):
        add(sub)
    return parser


# What each stage writes: flag -> kind (see dlearn.outputs.check_output). Every other path flag
# is an input; ROOTS are input folders read by file name, which an output may lie inside.
OUTPUTS: dict[str, dict[str, str]] = {
    "check-data": {"out": "file"},
    "make-body": {"out": "folder"},
    "body-model": {"out_model": "link", "out_uv": "link", "out_preview": "file"},
    "synth": {"out": "folder"},
    "crops": {"out": "store"},
    "densepose-predictions": {"out": "file"},
    "match": {"out": "store"},
    # The cGAN keeps its checkpoint folder and deletes nothing there (atomic_save checks the file).
    "cgan-train": {"out": "dlearn-cgan", "checkpoint_dir": "folder", "curve": "file"},
    "cgan-predict": {"out": "store"},
    "true-depths": {"out": "store"},
    "cgan-evaluate": {"out": "file"},
    "register": {"out": "store", "checkpoint_dir": "checkpoint"},
    "merge-registration": {"out": "store", "overlay": "file"},
    "regress": {"out": "dlearn-regressor", "checkpoint_dir": "checkpoint", "curve": "file"},
    "predict": {"out": "store"},
    "evaluate": {"out_json": "file", "out_csv": "file"},
    "report": {"summary": "file", "history": "file", "overlays": "file", "losses": "file", "meshes": "folder"},
    "h36m-crops": {"out": "store"},
    "evaluate-h36m": {"out_json": "file", "out_csv": "file"},
}
ROOTS = ("image_root", "iuv_dir")
# Inputs given as strings because they may be the word "standin" instead of a file.
STRING_INPUTS = {"body-model": ("model", "uv")}


def _paths(value: object) -> list[Path]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, Path)]


def check_paths(args: argparse.Namespace) -> None:
    """No stage writes over its inputs or over what is not dlearn's (see :mod:`dlearn.outputs`)."""
    from dlearn.outputs import check_stage_paths

    kinds = OUTPUTS.get(args.stage, {})
    outputs = [(f"--{dest.replace('_', '-')}", path, kind) for dest, kind in kinds.items()
               for path in _paths(getattr(args, dest, None))]  # fmt: skip
    inputs = [(f"--{dest.replace('_', '-')}", path) for dest, value in vars(args).items() if dest not in kinds
              for path in _paths(value)]  # fmt: skip
    inputs += [(f"--{dest}", Path(getattr(args, dest))) for dest in STRING_INPUTS.get(args.stage, ())
               if getattr(args, dest) != "standin"]  # fmt: skip
    check_stage_paths(inputs, outputs, [f"--{r.replace('_', '-')}" for r in ROOTS])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    handler: Handler = args.handler
    try:
        check_paths(args)
        handler(args)
    except (ValueError, OSError) as exc:
        # Input errors (bad files, keys, shapes) already name what is wrong: no traceback.
        log.error("%s", _describe(exc))
        return 1
    return 0


def _describe(exc: BaseException) -> str:
    """One line for a user error; a path blocked by a file says so (the OS's own words, "File
    exists" or "Not a directory", do not)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename is not None:
        return f"{exc.filename}: a file stands where this path needs a folder ({exc.strerror})"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
