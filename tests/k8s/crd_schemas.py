"""Schemas of the operators' objects the manifests use, for what kubernetes-validate cannot check.

kubernetes-validate knows the built-in kinds of each Kubernetes version and cannot be given a
CRD's schema (it looks schemas up by kind in its own package), and the operators' CRDs are not
on PyPI. So these are written here from the operators' API references: the fields the manifests
use, with their types and enums, the fields each object requires, and no unknown field where
the manifests set one (a typo fails). They are a subset of the real schemas, not a copy: an
object valid here can still be refused by an operator whose version dropped a field.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _object(properties: Schema, required: tuple[str, ...] = (), closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


_STRING: Schema = {"type": "string", "minLength": 1}
_INT: Schema = {"type": "integer", "minimum": 0}
_BOOL: Schema = {"type": "boolean"}
_NAME_REF: Schema = _object({"name": _STRING}, ("name",))
_QUANTITIES: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_RESOURCES: Schema = _object({"requests": _QUANTITIES, "limits": _QUANTITIES})
_METADATA: Schema = _object({"name": _STRING}, ("name",), closed=False)
_SELECTOR: Schema = _object(
    {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": _object(
                {
                    "key": _STRING,
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ("key", "operator"),
            ),
        },
    }
)


def _kind(api_version: str, kind: str, spec: Schema) -> Schema:
    return _object(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


_ROLE: Schema = _object(
    {
        "name": _STRING,
        "ensure": {"enum": ["present", "absent"]},
        "login": _BOOL,
        "superuser": _BOOL,
        "createdb": _BOOL,
        "createrole": _BOOL,
        "replication": _BOOL,
        "inherit": _BOOL,
        "passwordSecret": _NAME_REF,
    },
    ("name",),
)

CLUSTER = _kind(
    "postgresql.cnpg.io/v1",
    "Cluster",
    _object(
        {
            "instances": {"type": "integer", "minimum": 1},
            "imageName": _STRING,
            "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
            "enableSuperuserAccess": _BOOL,
            "superuserSecret": _NAME_REF,
            "bootstrap": _object(
                {"initdb": _object({"database": _STRING, "owner": _STRING}, ("database", "owner"))}
            ),
            "postgresql": _object(
                {"parameters": {"type": "object", "additionalProperties": {"type": "string"}}}
            ),
            "managed": _object({"roles": {"type": "array", "items": _ROLE}}),
            "storage": _object({"size": _STRING, "storageClass": _STRING}, ("size",)),
            "resources": _RESOURCES,
            "affinity": _object(
                {
                    "enablePodAntiAffinity": _BOOL,
                    "topologyKey": _STRING,
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                }
            ),
        },
        ("instances", "storage"),
    ),
)

POOLER = _kind(
    "postgresql.cnpg.io/v1",
    "Pooler",
    _object(
        {
            "cluster": _NAME_REF,
            "instances": _INT,
            "type": {"enum": ["rw", "ro", "r"]},
            "pgbouncer": _object(
                {
                    "poolMode": {"enum": ["session", "transaction"]},
                    "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                ("poolMode",),
            ),
        },
        ("cluster", "pgbouncer"),
    ),
)

SECRET_STORE = _kind(
    "external-secrets.io/v1",
    "SecretStore",
    _object(
        {
            "provider": _object(
                {
                    "vault": _object(
                        {
                            "server": {"type": "string", "pattern": "^https?://"},
                            "path": _STRING,
                            "version": {"enum": ["v1", "v2"]},
                            "auth": _object(
                                {
                                    "kubernetes": _object(
                                        {
                                            "mountPath": _STRING,
                                            "role": _STRING,
                                            "serviceAccountRef": _NAME_REF,
                                        },
                                        ("mountPath", "role"),
                                    )
                                },
                                ("kubernetes",),
                            ),
                        },
                        ("server", "auth"),
                    )
                },
                ("vault",),
            )
        },
        ("provider",),
    ),
)

EXTERNAL_SECRET = _kind(
    "external-secrets.io/v1",
    "ExternalSecret",
    _object(
        {
            "refreshInterval": {"type": "string", "pattern": "^[0-9]+(s|m|h)$"},
            "secretStoreRef": _object(
                {"name": _STRING, "kind": {"enum": ["SecretStore", "ClusterSecretStore"]}},
                ("name",),
            ),
            "target": _object(
                {
                    "name": _STRING,
                    "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                    "template": _object(
                        {
                            "engineVersion": {"enum": ["v2"]},
                            "type": _STRING,
                            "data": {"type": "object", "additionalProperties": {"type": "string"}},
                        }
                    ),
                },
                ("name",),
            ),
            "data": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {
                        "secretKey": _STRING,
                        "remoteRef": _object(
                            {"key": _STRING, "property": _STRING}, ("key", "property")
                        ),
                    },
                    ("secretKey", "remoteRef"),
                ),
            },
        },
        ("secretStoreRef", "target", "data"),
    ),
)

_RELABEL: Schema = _object(
    {"sourceLabels": {"type": "array", "items": _STRING}, "targetLabel": _STRING}
)
POD_MONITOR = _kind(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _object(
        {
            "selector": _SELECTOR,
            "podMetricsEndpoints": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {
                        "port": _STRING,
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": {"type": "string", "pattern": "^[0-9]+(s|m)$"},
                        "relabelings": {"type": "array", "items": _RELABEL},
                    },
                    ("port",),
                ),
            },
        },
        ("selector", "podMetricsEndpoints"),
    ),
)

_RULE: Schema = {
    "type": "object",
    "properties": {
        "record": _STRING,
        "alert": _STRING,
        "expr": {"type": "string", "minLength": 1},
        "for": {"type": "string", "pattern": "^[0-9]+(s|m|h|d)$"},
        "labels": {"type": "object", "additionalProperties": _STRING},
        "annotations": {"type": "object", "additionalProperties": _STRING},
    },
    "required": ["expr"],
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
    "additionalProperties": False,
}
PROMETHEUS_RULE = _kind(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _object(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {"name": _STRING, "rules": {"type": "array", "minItems": 1, "items": _RULE}},
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
)

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("postgresql.cnpg.io/v1", "Cluster"): CLUSTER,
    ("postgresql.cnpg.io/v1", "Pooler"): POOLER,
    ("external-secrets.io/v1", "SecretStore"): SECRET_STORE,
    ("external-secrets.io/v1", "ExternalSecret"): EXTERNAL_SECRET,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
