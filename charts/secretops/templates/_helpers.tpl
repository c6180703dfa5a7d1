{{/*
Names are fixed, as in the kustomize install: the Service name is what `secretops seal
--fetch-cert` asks for, the ClusterRoles are cluster-wide, and one controller serves a cluster
(install the chart once per cluster).
*/}}
{{- define "secretops.name" -}}secretops-controller{{- end }}

{{/* the labels every object gets: those of crds/ (kustomize's part-of included) and Helm's */}}
{{- define "secretops.labels" -}}
app.kubernetes.io/name: secretops
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: secretops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* the Pods' labels, also the Deployment's selector, the Service's and the policy's */}}
{{- define "secretops.selectorLabels" -}}
app.kubernetes.io/name: secretops
app.kubernetes.io/component: controller
{{- end }}

{{- define "secretops.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ $tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* features: externalSecrets off turns its three parts off, as the controller does */}}
{{- define "secretops.on" -}}
{{- $f := .root.Values.features -}}
{{- $es := $f.externalSecrets -}}
{{- if eq .feature "sealed-secrets" }}{{ if $f.sealedSecrets }}true{{ end }}
{{- else if eq .feature "external-secrets" }}{{ if $es }}true{{ end }}
{{- else if eq .feature "cluster-secret-stores" }}{{ if and $es $f.clusterSecretStores }}true{{ end }}
{{- else if eq .feature "rollout" }}{{ if and $es $f.rollout }}true{{ end }}
{{- else if eq .feature "token-requests" }}{{ if and $es $f.tokenRequests }}true{{ end }}
{{- else }}{{ fail (printf "unknown feature %s" .feature) }}
{{- end }}
{{- end }}

{{- define "secretops.namespaced" -}}
{{- if .Values.rbac.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
One grant: a Role (or ClusterRole) and its binding to the controller's ServiceAccount.
Arguments: root, kind (Role|ClusterRole), name, namespace (Roles), feature, grant, rules
(a YAML list as text).
*/}}
{{- define "secretops.grant" -}}
{{- $root := .root }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ .kind }}
metadata:
  name: {{ .name }}
  {{- if eq .kind "Role" }}
  namespace: {{ .namespace }}
  {{- end }}
  labels:
    {{- include "secretops.labels" $root | nindent 4 }}
    secretops.dev/feature: {{ .feature }}
    secretops.dev/grant: {{ .grant }}
rules:
  {{- .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ .kind }}Binding
metadata:
  name: {{ .name }}
  {{- if eq .kind "Role" }}
  namespace: {{ .namespace }}
  {{- end }}
  labels:
    {{- include "secretops.labels" $root | nindent 4 }}
    secretops.dev/feature: {{ .feature }}
    secretops.dev/grant: {{ .grant }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ .kind }}
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ include "secretops.name" $root }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
