"""The ``alerts:`` section of the config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from alerts.rules import AlertRuleConfig, validate_rules
from alerts.webhooks import WebhookConfig, validate_webhooks


class AlertsConfig(BaseModel):
    """The ``alerts:`` section of the config: the rules and the retraining webhooks
    (:mod:`alerts.webhooks`), names unique; webhooks name existing rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[AlertRuleConfig] = []
    webhooks: list[WebhookConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> AlertsConfig:
        validate_rules(self.rules)
        validate_webhooks(self.webhooks, {r.name for r in self.rules})
        return self
