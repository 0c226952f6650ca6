"""Which kinds a manifest may hold: those served, those Kubernetes has, and the rest.

`manifests` serves Namespace, Service, Endpoints, Pod (v1) and EndpointSlice
(discovery.k8s.io/v1, v1beta1), and ServiceImport (multicluster.x-k8s.io/v1alpha1, used with
the `multicluster` option). Manifest directories often hold a whole application, so the
other built-in kinds (Deployment, ConfigMap…) and custom resources (any other API group, e.g.
Knative's `serving.knative.dev` Service) are skipped quietly. A kind a built-in group does not
have — a typo such as `kind: Servise`, or `apiVersion: v1` with `kind: Deployment` — or a served
kind under an API version that does not exist is what the API server would refuse: `verdict`
says so, and the reader logs a warning naming the file, the document and the kind.
"""

from __future__ import annotations

#: Built-in API groups and their kinds (Kubernetes 1.33), enough to tell a typo from a kind we
#: do not use. "" is the core group.
BUILTIN: dict[str, frozenset[str]] = {
    g: frozenset(kinds.split())
    for g, kinds in {
        "": "Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node "
        "PersistentVolume PersistentVolumeClaim Pod PodTemplate ReplicationController "
        "ResourceQuota Secret Service ServiceAccount List",
        "apps": "ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet",
        "batch": "CronJob Job",
        "autoscaling": "HorizontalPodAutoscaler Scale",
        "policy": "Eviction PodDisruptionBudget",
        "networking.k8s.io": "Ingress IngressClass IPAddress NetworkPolicy ServiceCIDR",
        "discovery.k8s.io": "EndpointSlice",
        "rbac.authorization.k8s.io": "ClusterRole ClusterRoleBinding Role RoleBinding",
        "storage.k8s.io": "CSIDriver CSINode CSIStorageCapacity StorageClass "
        "VolumeAttachment VolumeAttributesClass",
        "scheduling.k8s.io": "PriorityClass",
        "coordination.k8s.io": "Lease LeaseCandidate",
        "node.k8s.io": "RuntimeClass",
        "certificates.k8s.io": "CertificateSigningRequest ClusterTrustBundle",
        "events.k8s.io": "Event",
        "apiextensions.k8s.io": "CustomResourceDefinition",
        "apiregistration.k8s.io": "APIService",
        "admissionregistration.k8s.io": "MutatingAdmissionPolicy MutatingAdmissionPolicyBinding "
        "MutatingWebhookConfiguration ValidatingAdmissionPolicy "
        "ValidatingAdmissionPolicyBinding ValidatingWebhookConfiguration",
        "flowcontrol.apiserver.k8s.io": "FlowSchema PriorityLevelConfiguration",
        "resource.k8s.io": "DeviceClass ResourceClaim ResourceClaimTemplate ResourceSlice",
        "authentication.k8s.io": "SelfSubjectReview TokenRequest TokenReview",
        "authorization.k8s.io": "LocalSubjectAccessReview SelfSubjectAccessReview "
        "SelfSubjectRulesReview SubjectAccessReview",
    }.items()
}

#: The kinds served, by (group, kind): the API versions that exist for them.
SERVED: dict[tuple[str, str], frozenset[str]] = {
    ("", "Namespace"): frozenset({"v1"}),
    ("", "Service"): frozenset({"v1"}),
    ("", "Endpoints"): frozenset({"v1"}),
    ("", "Pod"): frozenset({"v1"}),
    ("discovery.k8s.io", "EndpointSlice"): frozenset({"v1", "v1beta1"}),
    ("multicluster.x-k8s.io", "ServiceImport"): frozenset({"v1alpha1"}),
}

SERVE, SKIP, UNKNOWN = "serve", "skip", "unknown"


def verdict(api_version: str, kind: str) -> tuple[str, str]:
    """(SERVE|SKIP|UNKNOWN, why) for a document's apiVersion and kind.

    A missing apiVersion is taken as the core group's `v1` (a typed list's items may omit it).
    """
    group, _, version = api_version.rpartition("/")
    version = version or "v1"
    served = SERVED.get((group, kind))
    if served is not None:
        if version in served:
            return SERVE, ""
        have = ", ".join(f"{group}/{v}" if group else v for v in sorted(served))
        return UNKNOWN, f"{kind} has no apiVersion {api_version} (it has {have})"
    kinds = BUILTIN.get(group)
    if kinds is None:
        return SKIP, "a custom resource"
    if kind in kinds:
        return SKIP, "not served"
    where = f"API group {group}" if group else "the core API group (apiVersion v1)"
    return UNKNOWN, f"{where} has no kind {kind}"
