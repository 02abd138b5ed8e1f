{{/* Names, labels and the pieces every Deployment shares. */}}

{{- define "openfnf.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "openfnf.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "openfnf.selector" (dict "root" . "component" "api") */}}
{{- define "openfnf.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "openfnf.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "openfnf.fullname" .)) -}}
{{- end -}}

{{- define "openfnf.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Environment of every OpenFnF container: connection strings from the Secret, shared settings. */}}
{{- define "openfnf.env" -}}
- name: OPENFNF_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "openfnf.secretName" . }}
      key: redis-url
- name: OPENFNF_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "openfnf.secretName" . }}
      key: broker-url
      optional: true
- name: OPENFNF_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "openfnf.secretName" . }}
      key: token-secret
- name: OPENFNF_DRIVE_QUEUE
  value: {{ .Values.queues.drives | quote }}
- name: OPENFNF_ACTIVITY_QUEUE
  value: {{ .Values.queues.activities | quote }}
- name: OPENFNF_HEARTBEAT_STALE_SECONDS
  value: {{ .Values.probes.heartbeatStaleSeconds | quote }}
{{- if .Values.config.functions }}
- name: OPENFNF_FUNCTIONS
  value: /etc/openfnf/config/functions.yaml
{{- end }}
{{- end -}}

{{/* A pod annotation that changes with the config values, so `helm upgrade` rolls the pods (secrets: see docs/deploy.md). */}}
{{- define "openfnf.checksums" -}}
checksum/config: {{ toYaml .Values.config | sha256sum }}
{{- end -}}

{{- define "openfnf.envFrom" -}}
- configMapRef:
    name: {{ include "openfnf.fullname" . }}-settings
{{- end -}}

{{/* Volumes: /tmp (heartbeat files; the root filesystem is read-only) and the config files. */}}
{{- define "openfnf.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if or .Values.config.functions .Values.config.throttle }}
- name: config
  configMap:
    name: {{ include "openfnf.fullname" . }}-config
{{- end }}
{{- end -}}

{{- define "openfnf.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if or .Values.config.functions .Values.config.throttle }}
- name: config
  mountPath: /etc/openfnf/config
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the Deployments: include "openfnf.podCommon" (dict "root" . "part" .Values.api) */}}
{{- define "openfnf.podCommon" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .part.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
