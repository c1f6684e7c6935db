{{/* ------------------------------------------------------------------ names */}}

{{- define "rx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; components append a suffix, so keep room for it (40 chars). */}}
{{- define "rx.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rx.restate.fullname" -}}{{ include "rx.fullname" . }}-restate{{- end -}}
{{- define "rx.restate.headless" -}}{{ include "rx.fullname" . }}-restate-cluster{{- end -}}
{{- define "rx.operator.fullname" -}}{{ include "rx.fullname" . }}-operator{{- end -}}
{{- define "rx.keygen.fullname" -}}{{ include "rx.fullname" . }}-keygen{{- end -}}
{{- define "rx.tests.podName" -}}{{ include "rx.fullname" . }}-test-examples{{- end -}}

{{- define "rx.restate.ingressUrl" -}}
http://{{ include "rx.restate.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:8080
{{- end -}}
{{- define "rx.restate.adminUrl" -}}
http://{{ include "rx.restate.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:9070
{{- end -}}

{{/* ------------------------------------------------------------------ labels */}}

{{- define "rx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rx.labels" -}}
helm.sh/chart: {{ include "rx.chart" . }}
{{ include "rx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: restate-examples
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: (dict "root" $ "component" "restate-server") */}}
{{- define "rx.componentLabels" -}}
{{ include "rx.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rx.componentSelector" -}}
{{ include "rx.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* One example's selector: (dict "root" $ "example" "user-object") */}}
{{- define "rx.exampleSelector" -}}
{{ include "rx.componentSelector" (dict "root" .root "component" "example-service") }}
examples.restate.dev/example: {{ .example }}
{{- end -}}

{{/* ------------------------------------------------------------------ images */}}

{{/* (dict "image" .Values.x.image "root" $ "defaultTag" "...") -> repo:tag[@digest] */}}
{{- define "rx.image" -}}
{{- $tag := .image.tag | default .defaultTag | default .root.Chart.AppVersion | toString -}}
{{- if .image.digest -}}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* ------------------------------------------------------------------ examples */}}

{{/* An example's RestateWorkload and stable Service: (dict "root" $ "example" "user-object").
     At most 52 characters: each version's Service adds "-<10 hex chars>" (a DNS label). */}}
{{- define "rx.exampleName" -}}
{{- printf "%s-%s" (include "rx.fullname" .root) .example | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* The merged values of one example: examples.defaults overridden by examples.<key>; an
     image repository set in neither is the image of its Dockerfile target, restate-examples-<name>. */}}
{{- define "rx.exampleValues" -}}
{{- $root := .root -}}
{{- $ex := mergeOverwrite (deepCopy $root.Values.examples.defaults) (deepCopy (index $root.Values.examples .key)) -}}
{{- $_ := set $ex.image "repository" ($ex.image.repository | default (printf "restate-examples-%s" $ex.name)) -}}
{{- toYaml $ex -}}
{{- end -}}

{{/* ------------------------------------------------------------------ identity */}}

{{- define "rx.identity.mode" -}}
{{- $id := .Values.identity -}}
{{- if not $id.enabled -}}disabled
{{- else if $id.existingSecret -}}existing
{{- else if $id.privateKeyPem -}}values
{{- else -}}generated
{{- end -}}
{{- end -}}

{{- define "rx.identity.secretName" -}}
{{- $mode := include "rx.identity.mode" . -}}
{{- if eq $mode "existing" -}}{{ .Values.identity.existingSecret }}
{{- else if eq $mode "values" -}}{{ include "rx.fullname" . }}-restate-identity-values
{{- else -}}{{ include "rx.fullname" . }}-restate-identity
{{- end -}}
{{- end -}}

{{- define "rx.identity.secretKey" -}}
{{- if eq (include "rx.identity.mode" .) "existing" -}}{{ .Values.identity.existingSecretKey }}{{- else -}}private.pem{{- end -}}
{{- end -}}

{{- define "rx.identity.configMapName" -}}
{{- if eq (include "rx.identity.mode" .) "generated" -}}{{ include "rx.fullname" . }}-restate-identity-public
{{- else -}}{{ include "rx.fullname" . }}-restate-identity-public-values
{{- end -}}
{{- end -}}

{{/* Cross-field checks the schema cannot phrase clearly; called from a template. */}}
{{- define "rx.validate" -}}
{{- $id := .Values.identity -}}
{{- if and $id.enabled $id.privateKeyPem (not $id.publicKey) -}}
{{- fail "identity.privateKeyPem is set but identity.publicKey is empty: give both (publicKey = `python -m restate_operator.keygen --print-public-key key.pem`), or neither to let the chart generate a key pair" -}}
{{- end -}}
{{- if and $id.enabled $id.existingSecret (not $id.publicKey) -}}
{{- fail "identity.existingSecret is set but identity.publicKey is empty: the services need the publickeyv1_... id of that Secret's private key" -}}
{{- end -}}
{{- if and $id.enabled $id.existingSecret $id.privateKeyPem -}}
{{- fail "identity.existingSecret and identity.privateKeyPem are both set: choose one" -}}
{{- end -}}
{{- if and $id.enabled $id.publicKey (not (or $id.privateKeyPem $id.existingSecret)) -}}
{{- fail "identity.publicKey is set without identity.privateKeyPem or identity.existingSecret: the Restate server would sign with another key" -}}
{{- end -}}
{{- if and .Values.restate.replicated.enabled (gt (int .Values.restate.replicated.replication) (int .Values.restate.replicated.replicas)) -}}
{{- fail (printf "restate.replicated.replication (%v) cannot exceed restate.replicated.replicas (%v)" .Values.restate.replicated.replication .Values.restate.replicated.replicas) -}}
{{- end -}}
{{- if and .Values.operator.enabled (not (.Files.Get "files/operator-rules.yaml")) -}}
{{- fail "files/operator-rules.yaml is missing or empty: the operator's Role is rendered from it" -}}
{{- end -}}
{{- end -}}

{{/* ------------------------------------------------------------------ security */}}

{{- define "rx.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The images built from the repository's Dockerfile run as 10001. */}}
{{- define "rx.appPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}
