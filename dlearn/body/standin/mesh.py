"""Generic triangle-mesh helpers the stand-in's construction uses: the umbrella operator, the
enclosed volume, edge adjacency and edge-connected face components of a closed manifold, the
border loop and Euler characteristic of a patch, point-to-segment distances and per-vertex labels
from per-face labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def _uniform_laplacian(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, n) adjacency matrix with rows normalised to 1 (the uniform 'umbrella' operator)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed mesh, positive when its faces wind outwards."""
    tri = vertices[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


@dataclass(frozen=True)
class _EdgeTopology:
    """Edge adjacency of a closed manifold triangle mesh.

    Attributes:
        edges: (E, 2) vertex pairs, sorted within the row.
        edge_faces: (E, 2) the two faces on each edge.
        face_neighbors: (F, 3) the face across each of a face's three edges.
    """

    edges: np.ndarray
    edge_faces: np.ndarray
    face_neighbors: np.ndarray


def _edge_topology(faces: np.ndarray) -> _EdgeTopology:
    """Edges and face adjacency of a closed manifold mesh (F, 3); raises if it is not one."""
    num_faces = len(faces)
    half_edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(num_faces), 3)
    edges, inverse, counts = np.unique(half_edges, axis=0, return_inverse=True, return_counts=True)
    if np.any(counts != 2):
        raise RuntimeError("stand-in surface is not a closed manifold (an edge without exactly two faces)")
    inverse = inverse.ravel()
    edge_faces = owner[np.argsort(inverse, kind="stable")].reshape(-1, 2)
    first, second = edge_faces[inverse, 0], edge_faces[inverse, 1]
    across = np.where(first == owner, second, first)
    return _EdgeTopology(edges=edges, edge_faces=edge_faces, face_neighbors=across.reshape(3, num_faces).T)


def _face_components(mask: np.ndarray, topo: _EdgeTopology) -> tuple[int, np.ndarray]:
    """Edge-connected components of the faces where ``mask``: (count, (F,) label or -1)."""
    from scipy.sparse.csgraph import connected_components

    ef = topo.edge_faces
    keep = mask[ef[:, 0]] & mask[ef[:, 1]]
    n = len(mask)
    graph = sp.coo_matrix((np.ones(int(keep.sum())), (ef[keep, 0], ef[keep, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    labels = np.where(mask, labels, -1)
    uniq, labels[mask] = np.unique(labels[mask], return_inverse=True)
    return len(uniq), labels


def _boundary_loop(faces: np.ndarray) -> np.ndarray:
    """The border of a disc patch (F, 3) as one vertex loop, in the faces' winding direction.

    Raises:
        RuntimeError: the patch's border is not a single simple loop.
    """
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = directed[:, 0] * (faces.max() + 1) + directed[:, 1]
    reverse = directed[:, 1] * (faces.max() + 1) + directed[:, 0]
    border = directed[~np.isin(reverse, key)]
    if len(np.unique(border[:, 0])) != len(border):
        raise RuntimeError("part border touches itself")
    successor = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    start = int(border[:, 0].min())
    loop = [start]
    while (nxt := successor[loop[-1]]) != start:
        loop.append(nxt)
    if len(loop) != len(border):
        raise RuntimeError("part has more than one border loop")
    return np.array(loop)


def _euler_characteristic(faces: np.ndarray) -> int:
    """V - E + F of a triangle patch (F, 3): 1 for a disc (given one border loop), 2 for a sphere."""
    edges = np.unique(
        np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0
    )
    return len(np.unique(faces)) - len(edges) + len(faces)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) distance from points (P, 3) to the segment a-b."""
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1)


def _vertex_parts(faces: np.ndarray, face_part: np.ndarray, num_vertices: int) -> np.ndarray:
    """(N,) one part per vertex: the part of its lowest-numbered face (any choice is fine on seams)."""
    part = np.zeros(num_vertices, dtype=np.int64)
    for corner in (2, 1, 0):
        part[faces[::-1, corner]] = face_part[::-1]
    return part
