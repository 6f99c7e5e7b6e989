"""Training settings: penalty, weights, log-barrier t, steps, learning rate, network, device."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QSpinBox, QWidget

from napari_wss.config import INTERACTIVE_SIZE, INTERACTIVE_SIZE_FP32, PENALTY_WEIGHTS, Penalty, TrainConfig
from napari_wss.errors import InputError

from .fields import FloatField

DEVICES = ("auto", "cpu", "cuda", "mps")
T_EVERY = 20
"""Steps between log-barrier t updates. An 'epoch' of one volume is two or three batches, so growing
t every epoch as the paper does reaches t_max = 1000 within ~120 steps and the size barrier swamps
the cross-entropy: on the phantom (64 px, cosine lr, 300 steps) mean Dice 0.45 against 0.83 with
an update every 20 steps."""
WARMUP = 100
"""The widget's penalty warm-up (steps; ``TrainConfig`` and the CLI keep 0, the papers' setting).
Measured with benchmarks/interactive.py, one ACDC volume's own scribbles, quadratic penalty, 300
steps: with the textbook size ranges the median Dice of Predict volume after 60 s rose from 0.84 to
0.85 on ten volumes (the three slowest starters 0.21-0.37 -> 0.49-0.77 after 10 s); with tight
bounds (each slice's true sizes +-10 %) and no warm-up the first steps' penalty outweighs the
cross-entropy and empties structures (patient 93: myocardium 0.04, LV 0.06, mean 0.28; 0.82 with
the warm-up, median of five volumes 0.87 -> 0.90): a user who states sizes well must not be
punished for it."""

ABSENCE_WEIGHT = 0.3
"""The widget's absence weight (``TrainConfig`` and the CLI keep 0: absence as a size bound of 0).
Measured with benchmarks/interactive.py, one press on one ACDC frame: on five hypertrophic
end-systolic frames the old rule erased the RV on three (median Dice 0.584), weight 0.3 gives 0.803;
on ten normal end-systolic frames 0.857 -> 0.863, end-diastole unchanged (0.860 -> 0.859). On the CPU
cohort runs (fold 5, 300 steps) the old rule scored better, hence the split."""
STROKE_BOX_FLOOR = 0.0
"""The widget's *centroid near the strokes* uses each class's stroke bounding box as it is: the
centroid prior of every interactive measurement (benchmarks/interactive.py). Widening narrow boxes
to at least +-5 % of the trained region (``--centroid-floor 0.05``) was measured on five
hypertrophic end-systolic frames and not adopted: median Dice 0.803 -> 0.763 (two up, one down by
0.08, the RV still lost on the fifth)."""


def _spin(value: int, lo: int, hi: int, step: int = 1, tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class SettingsForm(QWidget):
    """The knobs of :class:`~napari_wss.config.TrainConfig` a user may want to turn."""

    def __init__(self) -> None:
        super().__init__()
        d = TrainConfig()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.penalty = QComboBox()
        self.penalty.addItems([p.value for p in Penalty])
        self.penalty.setCurrentText(d.penalty.value)
        self.penalty.setToolTip("How a violated bound is penalised; 'none' trains on the scribbles alone")
        self.penalty.currentTextChanged.connect(self._on_penalty)
        self.size_weight = FloatField(d.size_weight, factor=10.0, tooltip="Weight of the size penalty")
        self.centroid_weight = FloatField(d.centroid_weight, factor=10.0, tooltip="Weight of the centroid penalty")
        self.absence_weight = FloatField(
            ABSENCE_WEIGHT,
            factor=10.0,
            tooltip="Weight of the term that keeps a class off the slices where it is absent (ticked, or a scribbled "
            "slice without its strokes); 0 = a size bound of 0 in the penalty instead",
        )
        # The widget's default: measured on one ACDC volume's own scribbles (benchmarks/interactive.py,
        # 10 volumes), the quadratic penalty with Predict volume's island removal beat the log-barrier
        # on every volume after 60 s (median 0.84 vs 0.82). The CLI keeps TrainConfig's log-barrier.
        self.penalty.setCurrentText(Penalty.QUADRATIC.value)
        self.t0 = FloatField(d.t0, minimum=1e-6, factor=2.0, tooltip="Initial log-barrier t")
        self.t_growth = FloatField(
            d.t_growth, minimum=1.0, maximum=10.0, single_step=0.05, tooltip="t is multiplied by this after each epoch"
        )
        self.t_every = _spin(
            T_EVERY, 1, 100_000, 5, "t grows after this many steps (one 'epoch'; a volume is only a few batches)"
        )
        self.warmup = _spin(
            WARMUP,
            0,
            1_000_000,
            10,
            "The size, centroid and CRF terms grow from 0 to their weights over the model's first N steps",
        )
        self.steps = _spin(d.steps, 1, 1_000_000, 50, "Optimisation steps of one press of Train")
        self.lr = FloatField(d.lr, minimum=1e-8, maximum=1.0, factor=10.0, tooltip="Adam learning rate")
        self.lr_schedule = QComboBox()
        self.lr_schedule.addItems(["cosine", "constant"])
        self.lr_schedule.setToolTip(
            "cosine: the learning rate decays to 0 over the steps of one press (steady at the end); "
            "constant: for open-ended runs you stop yourself"
        )
        self.batch_size = _spin(d.batch_size, 1, 256, 1, "Slices per step")
        self.width = _spin(d.width, 2, 256, 2, "Channels of the U-Net's first stage (8-16 on a CPU, 32 on a GPU)")
        self.size = _spin(
            0,
            0,
            1024,
            16,
            f"Slices are resized to size x size for the network (a multiple of 16); auto = {INTERACTIVE_SIZE}, or "
            f"{INTERACTIVE_SIZE_FP32} on a CPU without bf16 arithmetic, where a step takes about 2.5 times as long",
        )
        self.size.setSpecialValueText("auto")  # shown for 0: resolved for the device at the press
        self.crop = QCheckBox("crop to the scribbled region")
        self.crop.setChecked(True)  # measured: finer and faster on ACDC (benchmarks/interactive.py)
        self.crop.setToolTip("Train on a square around the foreground scribbles: faster, finer for small hearts")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto = CUDA, then Apple MPS, then the CPU")
        rows = [
            ("Penalty", self.penalty),
            ("Size weight", self.size_weight),
            ("Centroid weight", self.centroid_weight),
            ("Absence weight", self.absence_weight),
            ("t0", self.t0),
            ("t growth", self.t_growth),
            ("t grows every (steps)", self.t_every),
            ("Penalty warm-up (steps)", self.warmup),
            ("Steps", self.steps),
            ("Learning rate", self.lr),
            ("LR schedule", self.lr_schedule),
            ("Batch size", self.batch_size),
            ("Network width", self.width),
            ("Network size", self.size),
            ("", self.crop),
            ("Device", self.device),
        ]
        for label, widget in rows:
            form.addRow(label, widget)

    def _on_penalty(self, text: str) -> None:
        penalty = Penalty(text)
        if penalty != Penalty.NONE:  # 'none' ignores the weights: keep what the user had
            self.size_weight.setValue(PENALTY_WEIGHTS[penalty][0])
            self.centroid_weight.setValue(PENALTY_WEIGHTS[penalty][1])

    def config(self, **overrides: object) -> TrainConfig:
        """A validated config (raises InputError in plain words)."""
        from napari_wss._session import mode_for

        size = overrides.pop("size", None) or self.size.value() or self.auto_size()
        if size % 16:
            lower = max(16, size - size % 16)
            raise InputError(f"the network size must be a multiple of 16, got {size}; try {lower} or {lower + 16}")
        penalty = Penalty(self.penalty.currentText())
        values: dict[str, object] = {
            "mode": mode_for(penalty),
            "penalty": penalty,
            "size_weight": self.size_weight.value(),
            "centroid_weight": self.centroid_weight.value(),
            "absence_weight": self.absence_weight.value(),
            "t0": self.t0.value(),
            "t_growth": self.t_growth.value(),
            "steps_per_epoch": self.t_every.value(),
            "penalty_warmup": self.warmup.value(),
            "lr_schedule": self.lr_schedule.currentText(),
            "steps": self.steps.value(),
            "lr": self.lr.value(),
            "batch_size": self.batch_size.value(),
            "width": self.width.value(),
            "size": size,
            "device": self.device.currentText(),
        }
        values.update(overrides)
        return TrainConfig(**values)  # type: ignore[arg-type]

    def auto_size(self) -> int:
        """The *auto* network size for the chosen device (imports torch: call it off the widget's
        construction, where the warm-up imports torch on its own thread)."""
        from napari_wss.training import interactive_size, resolve_device

        return interactive_size(resolve_device(self.device.currentText()))

    def set_config(self, config: TrainConfig) -> None:
        """Show a (loaded) config."""
        self.penalty.setCurrentText(config.penalty.value)
        self.size_weight.setValue(config.size_weight)
        self.centroid_weight.setValue(config.centroid_weight)
        self.absence_weight.setValue(config.absence_weight)
        self.t0.setValue(config.t0)
        self.t_growth.setValue(config.t_growth)
        self.lr.setValue(config.lr)
        self.lr_schedule.setCurrentText(config.lr_schedule)
        if config.steps_per_epoch is not None:
            self.t_every.setValue(config.steps_per_epoch)
        self.warmup.setValue(config.penalty_warmup)
        self.batch_size.setValue(config.batch_size)
        self.width.setValue(config.width)
        self.size.setValue(config.size)
        if config.device in DEVICES:
            self.device.setCurrentText(config.device)
