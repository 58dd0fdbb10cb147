"""Where vistool's results go to be reviewed: annotation and dataset tools.

  - `vistool.integrations.labelstudio`: Label Studio tasks JSON with predictions
    (pre-annotations) and the labeling config they fit; no extra package needed.
  - `vistool.integrations.fiftyone`: results as label fields of a FiftyOne dataset
    (`pip install vistool[fiftyone]`).

They sit beside the exporters (`vistool.batch.export`): both read finished results,
never the model.
"""
