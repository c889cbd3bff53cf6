{{/* The name of every object: the release's, "stsmend" by default. */}}
{{- define "stsmend.fullname" -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "stsmend.labels" -}}
app.kubernetes.io/name: stsmend
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The CronJob's API: batch/v1 from Kubernetes 1.21, batch/v1beta1 before. */}}
{{- define "stsmend.cronJobApiVersion" -}}
{{- if .Values.cronJob.apiVersion -}}
{{- .Values.cronJob.apiVersion -}}
{{- else if semverCompare "<1.21-0" .Capabilities.KubeVersion.Version -}}
batch/v1beta1
{{- else -}}
batch/v1
{{- end -}}
{{- end -}}
