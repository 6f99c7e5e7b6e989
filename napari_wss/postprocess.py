"""Post-processing of predicted label maps.

A network trained from scribbles paints stray islands of a class away from the structure (on
ACDC after short training, foreground on most of the slices beyond the heart's ends). Anatomical
structures such as the ventricles and the myocardium are each one connected object, so a common
remedy in cardiac segmentation is to keep, per class, only the largest connected component and
hand the rest to the background. Where the user's strokes are at hand (the volume they painted),
the object their strokes of a class touch is kept instead, also when a stray outgrows it.
Whether it helps is measured (benchmarks/interactive.py, benchmarks/acdc_quality.py), not assumed:
it is an option, and it is wrong for classes with many instances (cells, nuclei).

For a heart two more rules, slice by slice, with the classes found by name: the LV cavity as its
convex hull (the papillary muscles the experts count in it, :func:`fill_lv_hull`) and the
myocardium within a wall thickness the user states (:func:`limit_wall_thickness`) or within a
multiple of the septum's thickness measured on the prediction itself (:func:`limit_wall_to_septum`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from napari_wss.errors import InputError

LARGEST_COMPONENT = ("volume", "slice")
"""How :func:`keep_largest_component` connects voxels: across slices, or within each slice."""
MYO_BRIGHTNESS_PERCENTILE = 99.0  # the widget's ceiling: measured on ACDC, benchmarks/postprocess_study.py
FROM_PREDICTION = "prediction"
"""A myocardium ceiling that :func:`limit_myocardium_brightness` takes from the prediction itself
(:func:`predicted_myocardium_ceiling`), for images without myocardium strokes."""
SEPTUM_FACTOR = 1.5
"""The widget's wall limit, as a multiple of the septum's thickness (:func:`limit_wall_to_septum`;
measured on ACDC, benchmarks/postprocess_study.py --septum)."""


def keep_largest_component(
    labels: np.ndarray,
    num_classes: int,
    *,
    per_slice: bool = False,
    background: int = 0,
    scribbles: np.ndarray | None = None,
    enclosed: dict[int, int] | None = None,
) -> np.ndarray:
    """Keep only the largest connected component of every class; the rest becomes ``background``.

    Components are connected in the label map's own dimensions — in 3D across slices too — with
    full (8 / 26) connectivity, so a structure that touches its neighbour slice only diagonally
    (thick, gapped cine slices) stays one object. ``per_slice`` treats each slice of a 3D map on
    its own (a stack of unrelated 2D images). The input is not modified.

    With ``scribbles`` (the user's strokes on the same grid), a class keeps instead every component
    that holds one of its own strokes: the object the user marked, also where a larger stray of the
    class lies elsewhere (on ACDC a blood pool beside the heart can outgrow the left ventricle).
    A class none of whose strokes falls inside its prediction keeps its largest component.

    ``enclosed`` maps a class to the class that surrounds it (a heart's LV cavity to its
    myocardium, :func:`enclosures`): with no stroke to go by, such a class keeps the component
    with the most voxels times the share of its in-plane rim that is the surrounding class, not
    merely the largest (objects under a twentieth of the largest are not weighed). On ACDC's
    end-systolic frames of dilated right ventricles the network paints part of the RV pool as LV,
    larger than the true, ringed cavity, which the plain cut then drops (benchmarks/acdc_quality.py).

    Args:
        labels: integer label map, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``.
        num_classes: classes ``0 .. num_classes - 1``; ``background`` is left as it is.
        per_slice: components within each 2D slice of a 3D map instead of across slices.
        background: the class that receives the removed voxels.
        scribbles: optional strokes shaped like ``labels``, class ``c`` painted as ``c + 1``
            and 0 where nothing is painted (the engine's scribble encoding).
        enclosed: optional ``{class: surrounding class}`` choosing those classes' component by
            enclosure, as above.

    Returns:
        A new label map of the same shape and dtype.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D label map, got shape {lab.shape}")
    marks = None if scribbles is None else np.asarray(scribbles)
    if marks is not None and marks.shape != lab.shape:
        raise ValueError(f"scribbles have shape {marks.shape} but the labels {lab.shape}")
    if per_slice and lab.ndim == 3:
        return np.stack(
            [
                keep_largest_component(
                    s,
                    num_classes,
                    background=background,
                    scribbles=None if marks is None else marks[z],
                    enclosed=enclosed,
                )
                for z, s in enumerate(lab)
            ]
        )
    out = lab.copy()
    structure = ndimage.generate_binary_structure(lab.ndim, lab.ndim)
    for c in range(num_classes):
        if c == background:
            continue
        components, n = ndimage.label(lab == c, structure=structure)
        if n <= 1:
            continue
        marked = np.unique(components[marks == c + 1]) if marks is not None else np.zeros(0, int)
        marked = marked[marked != 0]
        if marked.size:
            keep = np.isin(components, marked)
        else:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            if enclosed and c in enclosed:
                # strays under a twentieth of the largest are not weighed (a stray-ridden map has thousands)
                candidates = np.flatnonzero(sizes >= sizes.max() / 20)
                score = sizes * _rim_shares(components, candidates, lab == enclosed[c])
                best = score.argmax() if score.max() > 0 else sizes.argmax()
            else:
                best = sizes.argmax()
            keep = components == best
        out[(components != 0) & ~keep] = background
    return out


def _rim_shares(components: np.ndarray, which: np.ndarray, surround: np.ndarray) -> np.ndarray:
    """For the components ``which`` (labels of ``ndimage.label``) of a 2D or 3D map, the share of
    each one's in-plane rim (the pixels next to it on its own slices, 8-connected) where
    ``surround`` holds, indexed by label; 0 for the others."""
    ring = np.zeros((3,) * components.ndim, dtype=bool)
    ring[(1,) * (components.ndim - 2)] = True  # the middle plane: neighbours within the slice
    boxes = ndimage.find_objects(components)
    shares = np.zeros(len(boxes) + 1)
    for i in which:  # labels 1..n
        box = boxes[i - 1]
        if box is None:
            continue
        grown = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        own = components[grown] == i
        rim = ndimage.binary_dilation(own, structure=ring) & ~own
        if rim.any():
            shares[i] = surround[grown][rim].mean()
    return shares


def enclosures(class_names: Sequence[str]) -> dict[int, int]:
    """``{LV cavity: myocardium}`` when ``class_names`` name both (as :func:`lv_hull_classes`
    finds them), for :func:`keep_largest_component`'s ``enclosed``; else empty."""
    from napari_wss.metrics import cardiac_classes

    found = cardiac_classes(class_names)
    return {found["LV"]: found["myocardium"]} if {"LV", "myocardium"} <= set(found) else {}


def clear_absent(labels: np.ndarray, absent: np.ndarray, *, background: int = 0) -> np.ndarray:
    """``labels`` (Z, Y, X) with each class handed to ``background`` on the slices where ``absent``
    (Z, K booleans, e.g. :func:`napari_wss.data.absent_classes` of the strokes) says it is not.

    Training only pushes an absent class off its slices; this applies what the user stated to the
    output (on ten ACDC end-systoles, before the stroke-based clean-up: median Dice 0.863 → 0.867,
    none down; docs/measurements.md, "Absence and small structures"). The input is not modified.
    """
    lab = np.asarray(labels)
    flags = np.asarray(absent, dtype=bool)
    if lab.ndim != 3 or flags.ndim != 2 or flags.shape[0] != lab.shape[0]:
        raise InputError(f"absent must be (slices, classes) for labels {lab.shape}, got {flags.shape}")
    out = lab.copy()
    for z, c in zip(*np.nonzero(flags)):
        if c != background:
            out[z][out[z] == c] = background
    return out


def _copy_by_slice(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a 2D or 3D label map and a (Z, Y, X) view of it (writes reach the copy)."""
    out = np.array(labels, copy=True)
    if out.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D label map, got shape {out.shape}")
    return out, out[None] if out.ndim == 2 else out


def fill_convex_hull(labels: np.ndarray, target: int, absorb: tuple[int, ...] | list[int]) -> np.ndarray:
    """On every 2D slice, hand the pixels of the ``absorb`` classes that lie inside the convex hull
    of class ``target`` to ``target``.

    Meant for a cavity drawn by convention as a convex region: ACDC's experts (and most cardiac
    MRI guidelines) count the papillary muscles and trabeculae as part of the left-ventricular
    cavity, while their intensity is the myocardium's, so a network taught by intensity carves them
    out of the cavity and thickens the wall inwards. ``fill_convex_hull(pred, lv, (myo,))`` puts
    them back. Pixels of other classes are left alone; so are slices without ``target``.
    The input is not modified.
    """
    from skimage.morphology import convex_hull_image

    out, slices = _copy_by_slice(labels)
    movable = np.isin(slices, list(absorb))
    for z in range(slices.shape[0]):
        mask = slices[z] == target
        if mask.sum() < 3 or not movable[z].any():
            continue
        hull = convex_hull_image(mask)
        slices[z][hull & movable[z]] = target
    return out


def _named(class_names: Sequence[str], needed: tuple[str, ...], rule: str) -> tuple[int, ...]:
    """The indices of the ``needed`` heart structures among ``class_names``, found by name
    (:func:`~napari_wss.metrics.cardiac_classes`); names without all of them are refused in one
    line saying that ``rule`` (ending in its verb) needs them."""
    from napari_wss.metrics import cardiac_classes

    found = cardiac_classes(class_names)
    if not set(needed) <= set(found):
        listed = " and ".join(filter(None, (", ".join(needed[:-1]), needed[-1])))
        which = f"a class named {listed}" if len(needed) == 1 else f"classes named {listed}"
        raise InputError(f"{rule} {which}; the model has {', '.join(class_names)}")
    return tuple(found[n] for n in needed)


def lv_hull_classes(class_names: Sequence[str]) -> tuple[int, int]:
    """(LV cavity, myocardium) among ``class_names`` for :func:`fill_lv_hull`, found by name
    (``LV`` / ``left ventricle``, ``myocardium`` / ``myo``; :func:`~napari_wss.metrics.cardiac_classes`).
    Names without both are refused in one line."""
    lv, myo = _named(class_names, ("LV", "myocardium"), "the convex LV cavity and the wall limit need")
    return lv, myo


def fill_lv_hull(labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """:func:`fill_convex_hull` for a heart: the left-ventricular cavity takes back the myocardium
    inside its convex hull on every slice (the papillary muscles, which ACDC's experts count in the
    cavity). Classes by name, as :func:`lv_hull_classes`."""
    lv, myo = lv_hull_classes(class_names)
    return fill_convex_hull(labels, lv, (myo,))


def limit_wall_thickness(
    labels: np.ndarray, class_names: Sequence[str], max_mm: float, spacing_yx: tuple[float, float]
) -> np.ndarray:
    """On every slice with an LV cavity, the myocardium farther than ``max_mm`` from the cavity
    becomes background: the wall can be no thicker than the user says (a cardiologist knows it —
    end-diastolic walls above 12–15 mm mean hypertrophy). Slices without a cavity (beyond the apex)
    are left as they are. Classes by name, as :func:`lv_hull_classes`; ``spacing_yx`` in mm."""
    if not max_mm > 0:
        raise InputError(f"the maximum wall thickness must be a positive number of mm, got {max_mm}")
    lv, myo = lv_hull_classes(class_names)
    out, slices = _copy_by_slice(labels)
    for z in range(slices.shape[0]):
        cavity = slices[z] == lv
        wall = slices[z] == myo
        if not cavity.any() or not wall.any():
            continue
        far = ndimage.distance_transform_edt(~cavity, sampling=spacing_yx) > max_mm
        slices[z][far & wall] = 0
    return out


def septum_classes(class_names: Sequence[str]) -> tuple[int, int, int]:
    """(RV, myocardium, LV) among ``class_names``, found by name, for the septum's rules; names
    without all three are refused in one line."""
    rv, myo, lv = _named(class_names, ("RV", "myocardium", "LV"), "the wall limit from the septum needs")
    return rv, myo, lv


def septal_thickness(
    labels: np.ndarray, class_names: Sequence[str], spacing_yx: tuple[float, float] = (1.0, 1.0)
) -> float | None:
    """The septum's thickness on a prediction: the median distance from the LV cavity (in the
    units of ``spacing_yx``) of the myocardium pixels that touch the RV cavity, over every slice
    with at least three of them; None where there are none. Classes by name (RV, myocardium, LV).

    The septum is the stretch of the wall between two blood pools, where a network taught by
    strokes has both borders to go by; elsewhere the wall's outer border meets tissue as dark as
    the wall, and that is where the myocardium overgrows (ACDC, docs/measurements.md)."""
    rv, myo, lv = septum_classes(class_names)
    _, slices = _copy_by_slice(labels)
    distances = []
    for z in range(slices.shape[0]):
        cavity = slices[z] == lv
        septum = (slices[z] == myo) & ndimage.binary_dilation(slices[z] == rv)
        if not cavity.any() or septum.sum() < 3:
            continue
        distances.append(ndimage.distance_transform_edt(~cavity, sampling=spacing_yx)[septum])
    return float(np.median(np.concatenate(distances))) if distances else None


def limit_wall_to_septum(
    labels: np.ndarray,
    class_names: Sequence[str],
    spacing_yx: tuple[float, float] = (1.0, 1.0),
    factor: float = SEPTUM_FACTOR,
) -> np.ndarray:
    """:func:`limit_wall_thickness` at ``factor`` times :func:`septal_thickness` of the same
    labels: the wall no thicker than the patient's own septum allows, with no number from the user
    (a hypertrophic septum raises the limit with it). Labels without a septum are returned as they
    are. The input is not modified."""
    if not factor > 0:
        raise InputError(f"the septum factor must be a positive number, got {factor}")
    septum = septal_thickness(labels, class_names, spacing_yx)
    if septum is None:
        return np.array(labels, copy=True)
    return limit_wall_thickness(labels, class_names, factor * septum, spacing_yx)


def _myocardium_class(class_names: Sequence[str]) -> int:
    """The myocardium's index among ``class_names`` (found by name), refused in one line without it."""
    return _named(class_names, ("myocardium",), "the myocardium's brightness needs")[0]


def myocardium_ceiling(
    image: np.ndarray,
    scribbles: np.ndarray,
    class_names: Sequence[str],
    percentile: float = MYO_BRIGHTNESS_PERCENTILE,
) -> float | None:
    """The brightest the myocardium may be: ``percentile`` of the image's intensities under the
    myocardium's own strokes (class c painted as c + 1), or None when it has none. Classes by name
    (``myocardium`` / ``myo``)."""
    if not 0 < percentile <= 100:
        raise InputError(f"the myocardium's brightness percentile must be in (0, 100], got {percentile}")
    myo = _myocardium_class(class_names)
    under = np.asarray(image)[np.asarray(scribbles) == myo + 1]
    return float(np.percentile(under, percentile)) if under.size else None


def dark_myocardium_classes(class_names: Sequence[str]) -> tuple[int, int]:
    """(myocardium, LV cavity) among ``class_names`` for :func:`predicted_myocardium_ceiling`, found
    by name; names without both are refused in one line."""
    myo, lv = _named(class_names, ("myocardium", "LV"), "the myocardium's brightness from the prediction needs")
    return myo, lv


def predicted_myocardium_ceiling(labels: np.ndarray, image: np.ndarray, class_names: Sequence[str]) -> float | None:
    """The brightest the myocardium may be, for a volume without myocardium strokes: the threshold
    between the intensities of the predicted myocardium and of the predicted LV cavity (dark wall,
    bright blood) that lies midway between the mean intensities on either side of it (Ridler and
    Calvard's iterative selection), or None when either class is missing or every pixel is equal.

    Looser than the strokes' ceiling (:func:`myocardium_ceiling`): the overgrown wall it is meant to
    trim also pulls the threshold up (measured in docs/measurements.md)."""
    from skimage.filters import threshold_isodata  # lazy: postprocess stays cheap to import

    myo, lv = dark_myocardium_classes(class_names)
    labels, image = np.asarray(labels), np.asarray(image)
    if image.shape != labels.shape:
        raise InputError(f"the image has shape {image.shape} but the labels {labels.shape}")
    wall, blood = image[labels == myo], image[labels == lv]
    if not wall.size or not blood.size:
        return None
    both = np.concatenate([wall, blood]).astype(np.float64)
    if both.min() == both.max():
        return None
    return float(threshold_isodata(both))


def limit_myocardium_brightness(
    labels: np.ndarray, image: np.ndarray, ceiling: float | str, class_names: Sequence[str]
) -> np.ndarray:
    """Predicted myocardium brighter than ``ceiling`` (:func:`myocardium_ceiling`, or
    :data:`FROM_PREDICTION`: :func:`predicted_myocardium_ceiling` of ``labels`` themselves, nothing
    changed when that is None) goes, slice by slice, to the class of the nearest pixel predicted as
    something else.

    In bright-blood cine MRI the wall is darker than the blood: a network taught by strokes along
    the middle of the wall also claims the bright rims and trabeculae of the cavities, which no wall
    pixel under the strokes is as bright as (on ten ACDC end-diastoles 26–60 % of the myocardium
    predicted inside the LV lay above the strokes' 99th percentile, 12–62 % inside the RV, 2–5 % of
    the true wall).
    ``image`` has ``labels``' shape; neither is modified."""
    myo = _myocardium_class(class_names)
    if np.shape(image) != np.shape(labels):
        raise InputError(f"the image has shape {np.shape(image)} but the labels {np.shape(labels)}")
    if isinstance(ceiling, str):
        if ceiling != FROM_PREDICTION:
            raise InputError(f"the myocardium's ceiling must be a number or {FROM_PREDICTION!r}, got {ceiling!r}")
        ceiling = predicted_myocardium_ceiling(labels, image, class_names)
        if ceiling is None:
            return np.array(labels, copy=True)
    out, slices = _copy_by_slice(labels)
    bright = np.asarray(image).reshape(slices.shape) > ceiling
    for z in range(slices.shape[0]):
        move = bright[z] & (slices[z] == myo)
        rest = slices[z] != myo
        if not move.any() or not rest.any():
            continue
        rows, cols = ndimage.distance_transform_edt(~rest, return_distances=False, return_indices=True)
        slices[z][move] = slices[z][rows[move], cols[move]]
    return out


def heart_rules(
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    lv_hull: bool = False,
    max_wall_mm: float | None = None,
    spacing_yx: tuple[float, float] | None = None,
    septum_factor: float | None = None,
) -> np.ndarray:
    """What Predict volume and the live previews apply after island removal, in this order: the
    convex LV cavity (:func:`fill_lv_hull`) when ``lv_hull``, the wall limited to
    ``septum_factor`` times the septum (:func:`limit_wall_to_septum`, in ``spacing_yx`` or
    pixels), then the wall limit (:func:`limit_wall_thickness`) when ``max_wall_mm`` is given
    (with ``spacing_yx`` in mm)."""
    if lv_hull:
        labels = fill_lv_hull(labels, class_names)
    if septum_factor is not None:
        labels = limit_wall_to_septum(labels, class_names, spacing_yx or (1.0, 1.0), septum_factor)
    if max_wall_mm is not None:
        if spacing_yx is None:
            raise InputError("a maximum wall thickness needs the image's voxel size")
        labels = limit_wall_thickness(labels, class_names, max_wall_mm, spacing_yx)
    return labels
