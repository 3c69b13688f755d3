"""Predict: a whole image or stack, or the slice in view, into named result layers."""

import dataclasses
import functools

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.annotations import BACKGROUND, contacts
from ..engine.errors import UNetError
from ..engine.object_size import AUTO
from ..engine.objects import ObjectSettings, find_objects
from ..engine.predict import Prediction, Predictor, PredictProgress
from ..engine.regions import DEFAULT_REGION
from . import _jobs
from ._annotate import AnnotateSection
from ._combo import LayerCombo
from ._layers import (
    CLASS_NAMES_KEY,
    CLASSES,
    EDITED_KEY,
    MODEL_KEY,
    OUTPUT_KEY,
    PAINT_KEY,
    STACK_KEY,
    channel_axis,
    channel_count,
    class_colormap,
    current_index,
    free_name,
    image_data,
    is_image_to_segment,
    is_unedited_output,
    paints_objects,
    placement,
    probability_colormap,
    spatial_shape,
    stack_kind,
    unsuitable,
)
from ._next_region import NextRegion, annotated_mask, ranking, stack_shape
from ._session import Session

PROGRESS_HEIGHT = 8
NOT_BLOBS = 0.5
"""Objects whose border pixels touch another object more often than this are not blobs."""


class PredictSection(QGroupBox):
    """Outputs to make, Predict / Current slice / Cancel, and copying to the annotations."""

    def __init__(self, session: Session, annotate: AnnotateSection, parent=None):
        super().__init__("3 · Predict", parent)
        self.session, self.annotate = session, annotate
        self.image_combo = LayerCombo(session.viewer, Image, accept=is_image_to_segment)
        self.classes = QCheckBox("Classes")
        self.classes.setChecked(True)
        self.classes.setToolTip("A Labels layer with the annotation ids; background transparent")
        self.probabilities = QCheckBox("Probabilities")
        self.probabilities.setToolTip("One Image layer per class, 0..1")
        self.uncertainty = QCheckBox("Uncertainty")
        self.uncertainty.setToolTip(
            "An Image layer of how unsure the model is, 0 sure .. 1 unsure: mistakes gather "
            "where it is bright (Next region takes you to the worst place)"
        )
        self.instances = QCheckBox("Objects of")
        self.instances.setToolTip(
            "The objects of one class, each with its own id: for classes of separate blobs "
            "(nuclei, cells), not for tissue or a cytoplasm stain"
        )
        self.instance_class = QComboBox()
        defaults = ObjectSettings()
        self.split = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.split.setValue(defaults.split)
        self.split.setToolTip(
            "How eagerly touching objects are split: 0 never (each connected blob is one "
            "object), 0.9 where the pass between two objects is lower than 90% of the "
            "smaller one's height, 1 at any dip"
        )
        self.min_size = QSpinBox(minimum=0, maximum=10**7)
        self.min_size.setValue(defaults.min_size)
        self.min_size.setToolTip(
            "Smaller objects join a touching object, or are dropped when alone"
        )
        self.stack = QComboBox()
        self.stack.addItem("series: objects per slice", False)
        self.stack.addItem("volume: objects in 3D", True)
        self.stack.setToolTip(
            "A series (time-lapse, unrelated slices) gets objects slice by slice; in a volume "
            "(z-stack) an object continues through the slices and keeps one id. Guessed from "
            "the layer's axis labels (t, z) and scale; your choice is kept with the layer."
        )
        self.z_spacing = QDoubleSpinBox(decimals=2, minimum=0.01, maximum=1000.0)
        self.z_spacing.setSingleStep(0.5)
        self.z_spacing.setToolTip("The z step over the pixel size (from the layer's scale)")
        self.stack.activated.connect(self._stack_chosen)
        self.z_spacing.editingFinished.connect(self._stack_chosen)
        self.predict_button = QPushButton("Predict")
        self.predict_button.setToolTip("Predict the whole image or stack")
        self.predict_button.clicked.connect(self.predict)
        self.slice_button = QPushButton("Current slice")
        self.slice_button.setToolTip("Predict only the slice in view (fast)")
        self.slice_button.clicked.connect(self.predict_slice)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.copy_button = QPushButton("Copy slice to annotations")
        self.copy_button.setToolTip(
            "Fill the unannotated pixels of the slice in view with the predicted classes, "
            "touching objects parted by background (1) lines, to correct them and train "
            "again (undo with Ctrl+Z)"
        )
        self.copy_button.clicked.connect(self.copy_to_annotations)
        self.next_button = QPushButton("Next region")
        self.next_button.setToolTip(
            "Go to where annotating helps most: the unannotated region of the last prediction "
            "with the most doubtful objects (likely merged, split, missed or spurious; with "
            "Objects off, the most unsure pixels), again for the next one"
        )
        self.next_button.clicked.connect(self.next_region)
        self.guide = NextRegion(session.viewer)
        self.ranking = None
        self._new_data = False
        self._ranked_from = 0
        self.progress = QProgressBar(textVisible=False, maximumHeight=PROGRESS_HEIGHT)
        self.status = QLabel()
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        outputs = QGridLayout()
        outputs.addWidget(self.classes, 0, 0)
        outputs.addWidget(self.probabilities, 0, 1)
        outputs.addWidget(self.uncertainty, 0, 2)
        outputs.addWidget(self.instances, 1, 0)
        outputs.addWidget(self.instance_class, 1, 1)
        form.addRow("Outputs", outputs)
        self.split_label, self.split_row = labelled_row(
            form, "Split objects", self.split, "min size (px)", self.min_size, stretch=1
        )
        self.stack_label, self.stack_row = labelled_row(
            form, "Stack", self.stack, "z step", self.z_spacing
        )
        buttons = QHBoxLayout()
        for button in (self.predict_button, self.slice_button, self.cancel_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        below = QHBoxLayout()
        below.addWidget(self.status, 1)
        copying = QVBoxLayout()
        copying.addWidget(self.copy_button)
        copying.addWidget(self.next_button)
        below.addLayout(copying)
        layout.addLayout(below)

        self._show_later = _jobs.Throttle(self._show, parent=self)
        self.last: PredictProgress | None = None
        self._fresh: set[int] = set()
        self.predictor: Predictor | None = None
        self.worker = None
        self.copying = None
        self._copy_into: tuple | None = None
        self.outputs: dict[str, list] = {}
        self._classes = None
        self._started = False
        self._image = None
        self._slice: int | None = None
        self._instances_of: int | None = None
        self._pending: list = []
        self._replaced: list = []  # (reused layer, its data and metadata before)
        self._added: list = []  # layers this prediction added
        self._undo = False
        self._add_next = QTimer(self, singleShot=True, interval=0)
        self._add_next.timeout.connect(self._add_pending)
        session.changed.connect(self._sync)
        session.viewer.layers.events.removed.connect(self._layer_removed)
        annotate.image_combo.currentIndexChanged.connect(self._follow_annotated_image)
        self.image_combo.currentIndexChanged.connect(self._show_stack_kind)
        self.instances.toggled.connect(self._sync)
        self._follow_annotated_image()
        self._show_stack_kind()
        self._sync()

    def _follow_annotated_image(self, index=None) -> None:
        image = self.annotate.image()
        if image is not None:
            self.image_combo.choose(image)

    def _show_stack_kind(self, index=None) -> None:
        """Show the chosen image's kind of stack: the user's choice, else the guess."""
        image = self.image_combo.layer()
        if image is not None and len(spatial_shape(image)) == 3:
            volume, spacing, _ = stack_kind(image)
            self.stack.setCurrentIndex(self.stack.findData(volume))
            self.z_spacing.setValue(spacing)
        self._sync()

    def _stack_chosen(self, index=None) -> None:
        """Keep the user's choice with the image layer."""
        image = self.image_combo.layer()
        if image is not None and len(spatial_shape(image)) == 3:
            image.metadata[STACK_KEY] = {
                "volume": bool(self.stack.currentData()),
                "z_spacing": self.z_spacing.value(),
            }
        self._sync()

    def objects(self) -> ObjectSettings:
        return ObjectSettings(split=self.split.value(), min_size=self.min_size.value())

    def predict(self) -> None:
        """Predict the whole image; result layers fill in slice by slice."""
        self._start(current_slice=False)

    def predict_slice(self) -> None:
        """Predict the slice in view (the whole image when it is 2D)."""
        self._start(current_slice=True)

    def cancel(self) -> None:
        if self.predictor is not None:
            self.predictor.stop()
            self.status.setText("Cancelling…")

    def _start(self, current_slice: bool) -> None:
        if self.worker is not None:
            return
        model, image = self.session.model, self.image_combo.layer()
        if model is None:
            show_error("Prediction needs a model: train one or load a model file.")
            return
        if image is None:
            show_error("Prediction needs an image: open one and choose it under Predict.")
            return
        if problem := unsuitable(image):
            show_error(f"Cannot predict: {problem}")
            return
        channels = channel_count(image)
        if channels != model.in_channels:
            show_error(
                f"Cannot predict '{image.name}': the model takes {model.in_channels} "
                f"channel(s) and the image has {channels}; choose an image like those the "
                "model was trained on, or train a new model on this one (Continue unticked)."
            )
            return
        data = image_data(image)
        index = None
        if current_slice and len(spatial_shape(image)) == 3:
            index = current_index(self.session.viewer, image)
            data = data[index]
        instances = self.instance_class.currentData() if self.instances.isChecked() else None
        stack_objects = bool(instances) and index is None and self._is_stack(image)
        volume = stack_objects and bool(self.stack.currentData())
        if stack_objects and not stack_kind(image)[2]:
            self._stack_chosen()
            show_info(
                f"'{image.name}' is taken as a {'volume' if volume else 'series'} (from its "
                "axis labels and scale): change it under Predict › Stack if it is not."
            )
        if not (self.classes.isChecked() or self.probabilities.isChecked() or instances):
            show_error("Choose at least one output: classes, probabilities or objects.")
            return
        try:
            predictor = Predictor(
                model,
                data,
                channel_axis=channel_axis(image),
                labels=self.classes.isChecked(),
                probabilities=self.probabilities.isChecked(),
                uncertainty=True,
                instances_of=instances,
                objects=self.objects() if instances else None,
                volume=volume,
                z_spacing=self.z_spacing.value() if volume else 1.0,
                device=self.session.device,
                scale=AUTO,
            )
            result = predictor.allocate()
        except UNetError as error:
            show_error(f"Cannot predict: {error}")
            return
        self.predictor, self._image, self._slice = predictor, image, index
        self._instances_of, self._new_data = instances, False
        image.events.data.connect(self._image_changed)
        self.progress.setValue(0)
        self.last = None
        self.status.setText(f"Predicting {image.name}…")
        self.worker = _jobs.start(
            predictor.run,
            now=False,
            yielded=self._progress,
            returned=self._predicted,
            errored=self._failed,
            finished=self._finished,
        )
        self._started = False
        self.outputs = self._output_layers(image, result, index is None)
        self._sync()

    def _output_layers(self, image, result: Prediction, live: bool) -> dict[str, list]:
        """Result layers by output, their data the arrays being filled (``live``), or zeros
        of the image's shape, into which a slice is copied at the end.

        Unedited results of an earlier prediction are reused; new layers are added one per
        turn of the event loop (each costs napari tens of milliseconds, so several outputs
        are several short stalls, not one long one), and the worker starts after the last;
        in the meantime their place in the lists is None.
        """
        model, viewer = self.session.model, self.session.viewer
        shape = spatial_shape(image)
        place = placement(image)
        wanted = []
        if result.labels is not None:
            wanted.append(("classes", f"{image.name}: U-Net classes", result.labels, None))
        if result.probabilities is not None:
            for label in range(2, model.n_classes + 1):
                name = f"{image.name}: P({model.class_names[label - 1]})"
                wanted.append(("probability", name, result.probabilities[label - 1], label))
        if result.instances is not None:
            name = f"{image.name}: {model.class_names[self.instance_class.currentData() - 1]}"
            wanted.append(("instances", f"{name} objects", result.instances, None))
        if self.uncertainty.isChecked():
            wanted.append(("uncertainty", f"{image.name}: uncertainty", result.uncertainty, None))
        layers: dict[str, list] = {}
        self._pending, self._replaced, self._added, self._undo = [], [], [], False
        for kind, name, array, label in wanted:
            metadata = {OUTPUT_KEY: kind}
            if self.session.model_file is not None:
                metadata[MODEL_KEY] = str(self.session.model_file)
            if kind == "classes":
                metadata.update({CLASS_NAMES_KEY: list(model.class_names), PAINT_KEY: CLASSES})
            existing = next((layer for layer in viewer.layers if layer.name == name), None)
            slot = layers.setdefault(kind, [])
            if existing is not None and is_unedited_output(existing, kind, shape):
                self._replaced.append((existing, existing.data, dict(existing.metadata)))
                existing.metadata.update(metadata)
                for key, value in place.items():  # the image may have moved since
                    setattr(existing, key, value)
                if live:
                    existing.data = array
                slot.append(existing)
                self._classes = existing if kind == "classes" else self._classes
                continue
            if existing is not None:
                kept, name = name, free_name(viewer, name)
                show_info(
                    f"'{kept}' was edited or is not a prediction: it is kept as it is, "
                    f"the new result is '{name}'."
                )
            data = array if live else np.zeros(shape, dtype=array.dtype)
            spec = (kind, len(slot), name, data, label, metadata, place)
            slot.append(None)
            self._pending.append(spec)
        self._add_next.start()
        return layers

    def _add_pending(self) -> None:
        """Add the next waiting result layer, or start the worker when all are there."""
        if not self._pending:
            if self.worker is not None and not self._started:
                self._started = True
                self.worker.start()
            return
        try:
            self._add_layer(*self._pending.pop(0))
        except Exception as error:
            self._pending.clear()
            _jobs.notify_error("Prediction", error)
            self._finished()
            return
        self._add_next.start()

    def _add_layer(self, kind, index, name, data, label, metadata, place) -> None:
        """Add one result layer to the viewer."""
        viewer = self.session.viewer
        if kind == "uncertainty":
            layer = viewer.add_image(
                data,
                name=name,
                colormap="magma",
                contrast_limits=(0, 1),
                blending="additive",
                metadata=metadata,
                **place,
            )
        elif kind == "probability":
            layer = viewer.add_image(
                data,
                name=name,
                colormap=probability_colormap(label),
                contrast_limits=(0, 1),
                blending="additive",
                visible=label == 2,
                metadata=metadata,
                **place,
            )
        else:
            layer = viewer.add_labels(
                data,
                name=name,
                colormap=class_colormap(background_visible=False) if kind == "classes" else None,
                metadata=metadata,
                **place,
            )
            layer.events.paint.connect(self._edited)
        self.outputs[kind][index] = layer
        self._added.append(layer)
        self._classes = layer if kind == "classes" else self._classes

    def last_classes(self):
        """The class layer of the last prediction, if it is still in the viewer."""
        layer = self._classes
        return layer if layer is not None and layer in self.session.viewer.layers else None

    def _progress(self, progress: PredictProgress) -> None:
        self.last = progress
        self._fresh.add(progress.index)
        self._show_later.poke()

    def _show(self) -> None:
        """Show the progress, and redraw the result layers where a slice in view is new."""
        if self.last is None:
            return
        self.progress.setValue(round(self.last.fraction * 100))
        self.status.setText(
            f"{self.last.done} of {self.last.total} slices · {self.last.elapsed:.1f} s"
        )
        viewer = self.session.viewer
        for layer in self._layers() if self._slice is None else ():
            if viewer.dims.ndisplay == 3 or current_index(viewer, layer) in self._fresh:
                layer.refresh()
        self._fresh.clear()

    def _predicted(self, result: Prediction) -> None:
        self._show_later.stop()
        self._show()
        image = self._image.name if self._image is not None else "the image"
        if self._new_data:
            self._undo = self.last is None or self.last.done == 0
            self.status.setText(f"Cancelled: {image} got new data; predict it again.")
            return
        if not result.complete:
            if self.last is None or self.last.done == 0:
                self._undo = True
                self.status.setText("Cancelled before the first slice: the layers are as before.")
            else:
                self.status.setText("Cancelled: the slices done so far are shown.")
            return
        if self._slice is not None:
            self._copy_slice(result)
        where = "" if self._slice is None else f", slice {self._slice}"
        self.status.setText(f"Predicted {image}{where}.{rescaled(result)}")
        self._rank(result.uncertainty, result.instances)
        if result.instances is not None:
            for layer in self.outputs.get("instances", []):
                if layer is not None:
                    layer.refresh()  # a volume's objects arrive all at once, at the end
            self._hint_if_not_blobs(result.instances)

    def _hint_if_not_blobs(self, instances) -> None:
        """Say so when the objects found mostly border each other: the class is not made of
        separate blobs (a cytoplasm stain, tissue), and the cut follows no real border."""
        objects = instances
        if objects.ndim == 3:
            image = self._image
            objects = objects[current_index(self.session.viewer, image) if image else 0]
        if shared_border_fraction(np.asarray(objects)) > NOT_BLOBS:
            model = self.session.model
            name = model.class_names[self._instances_of - 1] if model else "this class"
            show_info(
                f"Objects of '{name}': most objects share long edges with each other, so the "
                "class is not separate blobs and the cuts follow no real border. Use the "
                "class layer, or set Split objects to 0 to keep each connected region whole."
            )

    def _copy_slice(self, result: Prediction) -> None:
        arrays = {
            "classes": [result.labels],
            "probability": list(result.probabilities[1:])
            if result.probabilities is not None
            else [],
            "instances": [result.instances],
            "uncertainty": [result.uncertainty],
        }
        for kind, layers in self.outputs.items():
            for layer, array in zip(layers, arrays[kind], strict=True):
                layer.data[self._slice] = array
                layer.refresh()

    def _rank(self, uncertainty, instances) -> None:
        """Rank the regions of the prediction just made for Next region, in a worker."""
        image, first = self._image, self._slice or 0
        unsure = np.asarray(uncertainty)
        unsure = unsure.reshape(-1, *unsure.shape[-2:])
        if instances is not None:
            instances = np.asarray(instances).reshape(unsure.shape)
        whole = annotated_mask(self.annotate.annotations(), stack_shape(image))
        annotated = whole[first : first + len(unsure)]
        self.guide.reset(image, [])
        self._ranked_from = first
        self.ranking = _jobs.start(
            ranking,
            unsure,
            annotated,
            DEFAULT_REGION,
            instances,
            returned=self._ranked,
            errored=self._ranking_failed,
        )

    def _ranked(self, regions) -> None:
        """The ranking is ready: Next region can go there."""
        first = self._ranked_from
        self.guide.reset(
            self.guide.image, [dataclasses.replace(r, z=r.z + first) for r in regions]
        )
        self.ranking = None
        self._sync()

    def _ranking_failed(self, error: BaseException) -> None:
        self.ranking = None
        _jobs.notify_error("Next region", error)

    def next_region(self) -> None:
        """Show the best region of the last prediction not shown or annotated yet."""
        image = self.guide.image
        if image is None or image not in self.session.viewer.layers:
            show_error("Predict first: Next region ranks the regions of a prediction.")
            return
        annotations = self.annotate.annotations()
        region = self.guide.next(annotated_mask(annotations, stack_shape(image)))
        if region is None:
            show_info(
                "No doubtful, unannotated region is left in this prediction: train again and "
                "predict to rank the regions anew."
            )
            return
        if annotations is None and self.annotate.image() is image:
            annotations = self.annotate.new_annotations()
        self.guide.show(region, annotations)
        where = f"slice {region.z}, " if len(spatial_shape(image)) == 3 else ""
        self.status.setText(
            f"Next region: {where}y {region.y}, x {region.x} (outlined). Correct the "
            "prediction there, then train again."
        )

    def _failed(self, error: BaseException) -> None:
        self._undo = True
        self.status.setText("Prediction failed: see the notification. Earlier results are kept.")
        _jobs.notify_error("Prediction failed", error)

    def _finished(self) -> None:
        if self._image is not None:
            self._image.events.data.disconnect(self._image_changed)
        self.predictor, self.worker, self._image = None, None, None
        if self._undo:
            self._put_back()
        self._sync()

    def _put_back(self) -> None:
        """After a prediction that failed, or was cancelled before its first slice: the
        earlier results it reused hold their data again, and the layers it added with no
        slice done go."""
        done = self.last.done if self.last is not None else 0
        for layer, data, metadata in self._replaced:
            layer.data = data
            layer.metadata.clear()
            layer.metadata.update(metadata)
        viewer = self.session.viewer
        for layer in self._added if done == 0 or self._slice is not None else ():
            if layer in viewer.layers:
                viewer.layers.remove(layer)
        self._pending.clear()
        self._replaced, self._added, self._undo = [], [], False
        self.outputs = {}

    def _layers(self):
        return [layer for layers in self.outputs.values() for layer in layers if layer]

    def _image_changed(self, event=None) -> None:
        """The image being predicted got new data: what is predicted is of the old one."""
        if self.predictor is not None and not self._new_data:
            self._new_data = True
            self.predictor.stop()
            show_warning(
                f"Prediction cancelled: '{self._image.name}' got new data while it was "
                "predicted. Predict it again."
            )

    def _layer_removed(self, event) -> None:
        if self.predictor is None:
            return
        if event.value is self._image or event.value in self._layers():
            self.predictor.stop()
            show_warning(f"Prediction cancelled: layer '{event.value.name}' was deleted.")

    def _edited(self, event) -> None:
        event.source.metadata[EDITED_KEY] = True

    def copy_to_annotations(self) -> None:
        """Copy the prediction of the slice in view into the unannotated pixels of the
        annotation layer, as one undoable edit (cut into objects in a worker, pasted when
        ready: what is painted meanwhile is kept).

        Touching objects must not be taught as one: each class is cut into objects as "Objects
        of" does, and a background (1) line goes between touching objects, as Paint: objects
        makes; into an objects layer, each object is copied with an id of its own.
        """
        if self.copying is not None:
            return
        source, target = self.last_classes(), self.annotate.annotations()
        if source is None:
            show_error("Predict first: there is no class prediction to copy.")
            return
        if target is None:
            show_error("Choose or create an annotation layer under Annotate first.")
            return
        if target is source:
            show_error(
                f"'{target.name}' is the prediction itself: create an annotation layer with "
                "New under Annotate, then copy into it."
            )
            return
        if target.multiscale:
            show_error(
                f"'{target.name}' is a multiscale layer, which napari cannot paint into: copy "
                "into a layer made with New under Annotate."
            )
            return
        if source.data.shape != target.data.shape:
            show_error(
                f"The prediction {source.data.shape} and the annotations "
                f"{target.data.shape} have different shapes: predict the image the "
                "annotations were made on, then copy."
            )
            return
        index = current_index(self.session.viewer, target) if target.ndim == 3 else None
        window = () if index is None else (index,)
        probabilities = {
            label: np.array(layer.data[window])
            for label, layer in self._probability_layers(source.data.shape).items()
        }
        self._copy_into = (target, window, paints_objects(target))
        self.copying = _jobs.start(
            objects_to_paste,
            np.array(source.data[window]),
            probabilities,
            self.objects(),
            self._copy_into[2],
            returned=self._paste,
            errored=functools.partial(_jobs.notify_error, "Copy slice to annotations"),
            finished=self._copied,
        )
        self._sync()

    def _paste(self, cut: np.ndarray) -> None:
        """Fill the unannotated pixels of the copy's slice with ``cut``."""
        target, window, objects = self._copy_into
        if target not in self.session.viewer.layers:
            show_warning(f"Nothing copied: layer '{target.name}' was deleted meanwhile.")
            return
        current = np.asarray(target.data[window])
        if current.shape != cut.shape:
            show_warning(f"Nothing copied: layer '{target.name}' changed shape meanwhile.")
            return
        fill = numbered_objects(cut, current) if objects else cut
        if fill is None:
            show_error(
                f"'{target.name}' cannot hold more object ids: copy into a layer made "
                "with New while Paint is set to objects."
            )
            return
        free = (current == 0) & (fill > 0)
        if not free.any():
            show_info(
                "Nothing copied: every predicted pixel of this slice is annotated already."
                if fill.any()
                else "Nothing copied: this slice has no prediction. Predict it first."
            )
            return
        where = np.nonzero(free)
        if window:
            where = (np.full(len(where[0]), window[0]), *where)
        target.data_setitem(where, fill[free].astype(target.data.dtype))
        show_info(
            f"Copied {int(free.sum()):,} predicted pixels into '{target.name}', with "
            "background (1) lines between touching objects; existing annotations were kept. "
            "Correct the mistakes (merged or cut objects too) with the brush and train again."
        )

    def _copied(self) -> None:
        self.copying, self._copy_into = None, None
        self._sync()

    def _probability_layers(self, shape) -> dict[int, object]:
        """The unedited probability layers of the last prediction, by class id."""
        viewer = self.session.viewer
        return {
            label: layer
            for label, layer in enumerate(self.outputs.get("probability", []), 2)
            if layer is not None
            and layer in viewer.layers
            and is_unedited_output(layer, "probability", shape)
        }

    def _sync(self) -> None:
        model, running = self.session.model, self.worker is not None
        self.instance_class.blockSignals(True)
        chosen = self.instance_class.currentData()
        self.instance_class.clear()
        if model is not None:
            for label in range(2, model.n_classes + 1):
                self.instance_class.addItem(model.class_names[label - 1], label)
            self.instance_class.setCurrentIndex(max(0, self.instance_class.findData(chosen)))
        self.instance_class.blockSignals(False)
        for button in (self.predict_button, self.slice_button):
            button.setEnabled(model is not None and not running)
        self.cancel_button.setEnabled(running)
        self.copy_button.setEnabled(self.copying is None)
        self.next_button.setEnabled(bool(self.guide.regions) and not running)
        self.instance_class.setEnabled(self.instances.isChecked())
        for part in (self.split_label, self.split_row):
            part.setVisible(self.instances.isChecked())
        stack = self.instances.isChecked() and self._is_stack(self.image_combo.layer())
        for part in (self.stack_label, self.stack_row):
            part.setVisible(stack)
        self.z_spacing.setEnabled(bool(self.stack.currentData()))

    @staticmethod
    def _is_stack(image) -> bool:
        return image is not None and len(spatial_shape(image)) == 3


def rescaled(result: Prediction) -> str:
    """A sentence on the factor the image was predicted at, when it was rescaled."""
    if result.scale == 1 or result.object_diameter is None:
        return ""
    return (
        f" Objects measured {result.object_diameter:.0f} px across: predicted at "
        f"×{result.scale:.2f}, the model's object size."
    )


def labelled_row(
    form, title: str, first, caption: str, second, stretch: int = 0
) -> tuple[QLabel, QWidget]:
    """A form row ``title: first caption second`` (the first widget stretching, the second by
    ``stretch``), whose label and row are returned to be shown or hidden together."""
    label, row = QLabel(title), QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(first, 1)
    layout.addWidget(QLabel(caption))
    layout.addWidget(second, stretch)
    form.addRow(label, row)
    return label, row


def separated_classes(classes: np.ndarray, probabilities: dict, settings: ObjectSettings):
    """``classes`` (a (Y, X) slice of ids) with a background line between touching objects of
    each class, cut as "Objects of" cuts them (from the class probability where there is one,
    else from the shape of the class alone)."""
    result = classes.copy()
    for label in np.unique(classes):
        if label <= BACKGROUND:
            continue
        mask = classes == label
        probability = probabilities.get(int(label), mask.astype(np.float32))
        objects = find_objects(probability, mask, settings)
        result[contacts(objects, objects > 0)] = BACKGROUND
    return result


def objects_to_paste(classes, probabilities: dict, settings: ObjectSettings, objects: bool):
    """What Copy slice pastes from ``classes`` (a (Y, X) slice of ids): for a class layer,
    the classes with background lines between touching objects (:func:`separated_classes`);
    for an objects layer, background (1) and each object of class 2 numbered from 2 on."""
    if not objects:
        return separated_classes(classes, probabilities, settings)
    mask = classes == 2
    probability = probabilities.get(2)
    found = find_objects(
        mask.astype(np.float32) if probability is None else probability, mask, settings
    )
    cut = np.where(classes == BACKGROUND, BACKGROUND, 0).astype(np.int64)
    cut[found > 0] = found[found > 0].astype(np.int64) + BACKGROUND
    return cut


def numbered_objects(cut: np.ndarray, current: np.ndarray) -> np.ndarray | None:
    """``cut`` (background 1, objects 2, 3, ...) with its objects given ids after those of
    ``current``; None when its type cannot hold them."""
    first = max(int(current.max(initial=0)), BACKGROUND) + 1
    last = first + int(cut.max(initial=0)) - BACKGROUND - 1
    if np.issubdtype(current.dtype, np.integer) and last > np.iinfo(current.dtype).max:
        return None
    return np.where(cut > BACKGROUND, cut + first - BACKGROUND - 1, cut)


def shared_border_fraction(objects: np.ndarray) -> float:
    """Of the pixels on the border of an object (a 4-neighbour holds another id, background
    included), the fraction whose neighbour is another object."""
    inside = objects > 0
    border = contacts(objects, np.ones(objects.shape, dtype=bool)) & inside
    shared = contacts(objects, inside)
    return float(shared.sum() / border.sum()) if border.any() else 0.0
