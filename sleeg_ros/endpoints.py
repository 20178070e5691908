"""The node's publishers and subscriptions with their QoS, and what an incompatible peer logs.

Outputs are reliable (depth 2); inputs sensor-data best effort unless `reliable_input`. Every
topic's QoS may be changed by `qos_overrides./<topic>.publisher|subscription.<policy>`
parameters; an endpoint that cannot match ours is logged, naming the topic, the policy and the
override that would fix it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSOfferedIncompatibleQoSInfo,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
)
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode
from rclpy.publisher import Publisher
from rclpy.qos import QoSPolicyKind, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import Subscription

from sleeg_ros.parameters import StartupError

OUTPUT_QOS = QoSProfile(depth=2, reliability=QoSReliabilityPolicy.RELIABLE)
RELIABLE_INPUT_QOS = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE)
OVERRIDABLE = {k.name.lower() for k in QoSOverridingOptions.with_default_policies().policy_kinds}


def input_qos(reliable: bool) -> QoSProfile:
    """The inputs' QoS: sensor-data best effort, or reliable (parameter `reliable_input`)."""
    return RELIABLE_INPUT_QOS if reliable else qos_profile_sensor_data


def publisher(node: LifecycleNode, kind: type, topic: str, managed: bool) -> Publisher:
    """A reliable publisher, `managed` (a lifecycle publisher: publishes only while active)
    or not; `qos_overrides.<topic>.publisher.*` may change its QoS."""
    name = node.resolve_topic_name(topic)
    events = PublisherEventCallbacks(
        incompatible_qos=lambda info: _incompatible_qos(node, info, name, pub, "publisher")
    )
    create = node.create_lifecycle_publisher if managed else node.create_publisher
    try:
        pub = create(
            kind,
            topic,
            copy.copy(OUTPUT_QOS),  # overrides change the profile in place
            event_callbacks=events,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
    except (RuntimeError, ParameterException) as err:
        raise StartupError(f"parameter 'qos_overrides.{name}.publisher': {err}") from err
    return pub


def subscription(
    node: LifecycleNode, kind: type, topic: str, callback: Callable[[Any], None], qos: QoSProfile
) -> Subscription:
    """An input subscription on resolved `topic`; `qos_overrides.<topic>.subscription.*` may
    change its QoS."""
    events = SubscriptionEventCallbacks(
        incompatible_qos=lambda info: _incompatible_qos(node, info, topic, sub, "subscription")
    )
    try:
        sub = node.create_subscription(
            kind,
            topic,
            callback,
            copy.copy(qos),
            event_callbacks=events,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
    except (RuntimeError, ParameterException) as err:
        raise StartupError(f"parameter 'qos_overrides.{topic}.subscription': {err}") from err
    return sub


def _incompatible_qos(
    node: LifecycleNode,
    info: QoSOfferedIncompatibleQoSInfo | QoSRequestedIncompatibleQoSInfo,
    topic: str,
    entity: Publisher | Subscription,
    side: str,
) -> None:
    """Log an endpoint that cannot match our `entity` (its `side`: publisher | subscription),
    naming the topic and the policy."""
    policy = QoSPolicyKind(info.last_policy_kind).name.lower()
    ours = getattr(entity.qos_profile, policy, None)
    ours = getattr(ours, "name", ours)
    other = "a subscription requests" if side == "publisher" else "a publisher offers"
    fix = "change the other side's QoS"
    if policy in OVERRIDABLE:
        fix += f" or qos_overrides.{topic}.{side}.{policy}"
    node.get_logger().warning(
        f"incompatible QoS on {topic}: {other} a {policy} this {side} cannot match "
        f"(ours: {str(ours).lower()}); nothing flows between them: {fix}"
    )
