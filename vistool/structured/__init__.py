"""Structured generation: constrain a task's answer to the JSON its parser expects.

  - `schema`: the JSON schema of an answer, from the task's declared `AnswerShape` and
    the family's profile (key names, order, coordinate range, label enum);
  - `grammar`: the local backend's engine (xgrammar masks as a logits processor, with a
    free thought channel before the constrained answer).
The OpenAI-compatible backend sends the same schema as `response_format`.
"""

from vistool.structured.schema import (
    OTHER_LABEL,
    AnswerShape,
    SchemaPlan,
    answer_schema,
    schema_id,
    unstructured_reason,
)

__all__ = ["OTHER_LABEL", "AnswerShape", "SchemaPlan", "answer_schema", "schema_id", "unstructured_reason"]
