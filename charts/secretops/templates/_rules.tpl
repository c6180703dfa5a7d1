{{/*
The rules of each grant: the same as crds/rbac.yaml (why each one exists is said there and in
docs/controller.md, "Features and RBAC"); tests/controller/test_chart.py keeps them equal.
*/}}

{{/* core, controller namespace: leader election (read, created once, renewed and released) */}}
{{- define "secretops.rules.core" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames:
    - {{ .Values.leaderElection.leaseName }}
    {{- range $i := untilStep 1 (int .Values.shards) 1 }}
    - {{ $.Values.leaderElection.leaseName }}-shard-{{ $i }}
    {{- end }}
  verbs: [get, update]
{{- end }}

{{/* sealed-secrets, controller namespace: the key ring and the recipients ConfigMap */}}
{{- define "secretops.rules.key-ring" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [list, create]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [secretops-sealing-recipients]
  verbs: [patch]
{{- end }}

{{/* sealed-secrets, where it works */}}
{{- define "secretops.rules.sealed-secrets" -}}
- apiGroups: [secretops.dev]
  resources: [sealedsecrets]
  verbs: [get, list, watch]
- apiGroups: [secretops.dev]
  resources: [sealedsecrets/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* external-secrets, controller namespace: the fingerprint key */}}
{{- define "secretops.rules.fingerprint-key" -}}
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [secretops-fingerprint-key]
  verbs: [get]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end }}

{{/* external-secrets, where it works */}}
{{- define "secretops.rules.external-secrets" -}}
- apiGroups: [secretops.dev]
  resources: [externalsecrets, secretstores]
  verbs: [get, list, watch, patch]
- apiGroups: [secretops.dev]
  resources: [externalsecrets/status, secretstores/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* cluster-secret-stores: cluster-scoped, a ClusterRole in every mode. The namespaces'
labels for spec.conditions[].namespaceSelector: namespaced mode watches each of its namespaces
by a metadata.name field selector, which kube-apiserver authorizes as a request for that
namespace by name, so resourceNames keeps the grant to them */}}
{{- define "secretops.rules.cluster-secret-stores" -}}
- apiGroups: [secretops.dev]
  resources: [clustersecretstores]
  verbs: [get, list, watch, patch]
- apiGroups: [secretops.dev]
  resources: [clustersecretstores/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
  {{- with .Values.rbac.watchNamespaces }}
  resourceNames: {{ toJson . }}
  {{- end }}
{{- end }}

{{/* cluster-secret-stores, controller namespace: Events about them */}}
{{- define "secretops.rules.cluster-secret-store-events" -}}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* rollout, where it works */}}
{{- define "secretops.rules.rollout" -}}
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [list, patch]
{{- end }}

{{/* token-requests, where it works: only the names the install lists */}}
{{- define "secretops.rules.token-requests" -}}
- apiGroups: [""]
  resources: [serviceaccounts/token]
  resourceNames: {{ toJson .Values.rbac.tokenRequestServiceAccounts }}
  verbs: [create]
{{- end }}
