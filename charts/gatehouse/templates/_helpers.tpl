{{/* Names and labels. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- end }}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "gatehouse.secretName" -}}
{{- default (printf "%s-secret" (include "gatehouse.fullname" .)) .Values.existingSecret }}
{{- end }}

{{/*
"true" when browser sign-in is on: the web client secret and the session key are both set (the
chart's Secret), or come from existingSecret (session.fromExistingSecret); "" otherwise.
*/}}
{{- define "gatehouse.browser" -}}
{{- if .Values.existingSecret }}
{{- if .Values.session.fromExistingSecret }}true{{ end }}
{{- else if and .Values.oidc.clientSecret .Values.session.key }}true
{{- end }}
{{- end }}

{{/* The chart's Secret (or existingSecret) is mounted when the admin account or browser sign-in is on. */}}
{{- define "gatehouse.needsSecret" -}}
{{- if or .Values.admin.enabled (include "gatehouse.browser" .) }}true{{ end }}
{{- end }}

{{- define "gatehouse.portName" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/*
Checks that mirror the server's own, with the server's exact messages, so a wrong value fails
`helm install` instead of a crash-looping pod.
*/}}
{{/*
A copy of gatehouse_core::authorize::RESERVED_PARAMETERS, in the same order; the test
crates/gatehouse-core/tests/reserved_parameters_copies.rs fails when they differ, and
scripts/helm-test reads its names from this list.
*/}}
{{- define "gatehouse.reservedParameters" -}}
{{- list "response_type" "client_id" "redirect_uri" "scope" "state" "nonce" "code_challenge" "code_challenge_method" "request" "request_uri" | toJson }}
{{- end }}

{{- define "gatehouse.checkParameterName" -}}
{{- $reserved := include "gatehouse.reservedParameters" .root | fromJsonArray }}
{{- if eq (trim .name) "" }}
{{- fail (printf "%s: a parameter name is empty" .key) }}
{{- end }}
{{- if has .name $reserved }}
{{- fail (printf "%s: %q is a reserved OAuth/OIDC protocol parameter that gatehouse sets itself; it cannot be configured (reserved: %s)" .key .name (join ", " $reserved)) }}
{{- end }}
{{- end }}

{{- define "gatehouse.validate" -}}
{{- $v := .Values }}
{{- if and $v.authentication.config $v.authentication.existingConfigMap.name }}
{{- fail "authentication: set config or existingConfigMap.name, not both" }}
{{- end }}
{{- if and $v.authentication.issuers (not (or $v.authentication.config $v.authentication.existingConfigMap.name)) }}
{{- fail "authentication.issuers: names issuers, but there is no authentication.config or authentication.existingConfigMap to configure them" }}
{{- end }}
{{- range $name, $_ := $v.oidc.additionalParameters }}
{{- include "gatehouse.checkParameterName" (dict "root" $ "key" (printf "oidc.additionalParameters.%s" $name) "name" $name) }}
{{- end }}
{{- range $name, $_ := $v.oidc.userParameters }}
{{- include "gatehouse.checkParameterName" (dict "root" $ "key" (printf "oidc.userParameters.%s" $name) "name" $name) }}
{{- if hasKey $v.oidc.additionalParameters $name }}
{{- fail (printf "oidc.userParameters.%s: is also a static additional parameter; a parameter is either fixed by the server or set by the user, not both" $name) }}
{{- end }}
{{- end }}
{{- if $v.oidc.enabled }}
{{- if not $v.oidc.issuerUrl }}{{ fail "oidc.issuerUrl: required when oidc is enabled (env OIDC_ISSUER_URL)" }}{{ end }}
{{- if not $v.oidc.clientId }}{{ fail "oidc.clientId: required when oidc is enabled (env OIDC_CLIENT_ID)" }}{{ end }}
{{- end }}
{{- if and $v.admin.enabled (not $v.existingSecret) }}
{{- if not $v.admin.passwordHash }}{{ fail "admin.passwordHash: required when admin is enabled (or existingSecret with the key admin-password-hash)" }}{{ end }}
{{- if not (regexMatch "^\\$2[aby]\\$[0-9]{2}\\$[./A-Za-z0-9]{53}$" (trim $v.admin.passwordHash)) }}{{ fail "admin.passwordHash: is not a bcrypt hash (`$2a$`/`$2b$`/`$2y$`, 60 characters); make one with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`" }}{{ end }}
{{- if not (regexMatch "^\\$2[aby]\\$(1[0-9]|2[0-9]|3[01])\\$" (trim $v.admin.passwordHash)) }}{{ fail "admin.passwordHash: the bcrypt cost is below 10, which makes password guessing cheap; make a new hash with `htpasswd -nbBC 12 '' PASSWORD | tr -d ':\\n'`" }}{{ end }}
{{- if not $v.admin.tokenSigningKey }}{{ fail "admin.tokenSigningKey: required when admin is enabled (or existingSecret with the key admin-token-signing-key)" }}{{ end }}
{{- if lt (len (trim $v.admin.tokenSigningKey)) 32 }}{{ fail "admin.tokenSigningKey: must be at least 32 bytes; make one with `openssl rand -hex 32`" }}{{ end }}
{{- if and $v.admin.previousTokenSigningKey (lt (len (trim $v.admin.previousTokenSigningKey)) 32) }}{{ fail "admin.previousTokenSigningKey: must be at least 32 bytes (the key that was admin.tokenSigningKey before the rotation)" }}{{ end }}
{{- end }}
{{- $s := $v.session }}
{{- if and $s.cookieName (not (regexMatch "^[A-Za-z0-9_-]+$" $s.cookieName)) }}
{{- fail "session.cookieName: use letters, digits, `_` and `-` only" }}
{{- end }}
{{- if $v.existingSecret }}
{{- if $v.oidc.clientSecret }}{{ fail "oidc.clientSecret: not used with existingSecret; store it there under the key oidc-client-secret and set session.fromExistingSecret: true" }}{{ end }}
{{- if $s.key }}{{ fail "session.key: not used with existingSecret; store it there under the key session-key and set session.fromExistingSecret: true" }}{{ end }}
{{- else }}
{{- if $s.fromExistingSecret }}{{ fail "session.fromExistingSecret: needs existingSecret (a Secret with the keys oidc-client-secret and session-key)" }}{{ end }}
{{- if and $v.oidc.clientSecret (not $s.key) }}{{ fail "session.key: required for browser sign-in (oidc.clientSecret is set); make one with `openssl rand -hex 32`" }}{{ end }}
{{- if and $s.key (not $v.oidc.clientSecret) }}{{ fail "oidc.clientSecret: required for browser sign-in (session.key is set)" }}{{ end }}
{{- if and $s.key (lt (len (trim $s.key)) 32) }}{{ fail "session.key: must be at least 32 bytes; make one with `openssl rand -hex 32`" }}{{ end }}
{{- end }}
{{- if include "gatehouse.browser" $ }}
{{- if not $v.oidc.enabled }}{{ fail "oidc: browser sign-in needs oidc.issuerUrl and oidc.clientId" }}{{ end }}
{{- if not $v.publicUrl }}{{ fail "publicUrl: required for browser sign-in: the redirect URI is <publicUrl>/auth/callback" }}{{ end }}
{{- end }}
{{- if and (not $v.oidc.enabled) (not $v.admin.enabled) (not $v.fallThrough.enabled) }}
{{- fail "(top level): nothing can authenticate: enable oidc, admin or fallThrough" }}
{{- end }}
{{- $ca := $v.publicCa }}
{{- if gt (len (compact (list $ca.bundle $ca.secretName $ca.configMapName))) 1 }}
{{- fail "publicCa: set one of bundle, secretName and configMapName (the CA clients need to trust publicUrl), not several" }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.secretName) }}
{{- fail "tls.secretName: required when tls.enabled (a kubernetes.io/tls Secret with tls.crt and tls.key)" }}
{{- end }}
{{- if and $v.rbac.create (eq $v.rbac.serviceAccountScope "namespaces") $v.serviceAccounts.allNamespaces }}
{{- fail "serviceAccounts.allNamespaces: needs rbac.serviceAccountScope: cluster (gatehouse then watches and impersonates ServiceAccounts in every namespace); or list the namespaces in serviceAccounts.namespaces and keep the namespaced RBAC" }}
{{- end }}
{{- end }}

{{/* Paths inside the pod. */}}
{{- define "gatehouse.paths" -}}
{{- dict "config" "/etc/gatehouse/config" "secret" "/etc/gatehouse/secret" "tls" "/etc/gatehouse/tls" "kubeconfig" "/etc/gatehouse/kubeconfig" "publicCa" "/etc/gatehouse/public-ca" "authentication" "/etc/gatehouse/authentication" | toJson }}
{{- end }}

{{/*
"true" when an issuer of `authentication.issuers` is in `whenUnmapped: impersonate` mode.
*/}}
{{- define "gatehouse.impersonatesUsers" -}}
{{- range .Values.authentication.issuers }}{{ if eq (.whenUnmapped | default "") "impersonate" }}true{{ end }}{{ end }}
{{- end }}

{{/*
The `extra` keys the impersonated users may carry: the kube-apiserver's credential id, the
inline file's claimMappings.extra keys and authentication.impersonate.extraKeys, as JSON.
*/}}
{{- define "gatehouse.impersonatedExtraKeys" -}}
{{- $keys := list "authentication.kubernetes.io/credential-id" }}
{{- range (.Values.authentication.config.jwt | default list) }}
{{- range ((.claimMappings | default dict).extra | default list) }}
{{- $keys = append $keys .key }}
{{- end }}
{{- end }}
{{- $keys = concat $keys .Values.authentication.impersonate.extraKeys }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
gatehouse's YAML config, built as a dict and printed with toYaml, so every value (any string,
any map key) is quoted by the YAML emitter and read back exactly. Empty values are left out so
the server's defaults apply.
*/}}
{{- define "gatehouse.config" -}}
{{- include "gatehouse.validate" . }}
{{- $v := .Values }}
{{- $p := include "gatehouse.paths" . | fromJson }}
{{- $browser := include "gatehouse.browser" . }}
{{- $c := dict "listen" (printf "0.0.0.0:%d" (int $v.containerPort)) }}
{{- with $v.publicUrl }}{{ $_ := set $c "publicUrl" . }}{{ end }}
{{- if $v.publicCa.bundle }}
{{- $_ := set $c "publicCaFile" (printf "%s/public-ca.pem" $p.config) }}
{{- else if or $v.publicCa.secretName $v.publicCa.configMapName }}
{{- $_ := set $c "publicCaFile" (printf "%s/ca.pem" $p.publicCa) }}
{{- end }}
{{- if $v.tls.enabled }}
{{- $_ := set $c "tls" (dict "certFile" (printf "%s/tls.crt" $p.tls) "keyFile" (printf "%s/tls.key" $p.tls)) }}
{{- end }}
{{- $k := dict }}
{{- if $v.kubernetes.kubeconfigSecret }}{{ $_ := set $k "kubeconfig" (printf "%s/kubeconfig" $p.kubeconfig) }}{{ end }}
{{- with $v.kubernetes.context }}{{ $_ := set $k "context" . }}{{ end }}
{{- with $v.kubernetes.maxStreamsPerConnection }}{{ $_ := set $k "maxStreamsPerConnection" . }}{{ end }}
{{- with $v.kubernetes.maxConnections }}{{ $_ := set $k "maxConnections" . }}{{ end }}
{{- if $k }}{{ $_ := set $c "kubernetes" $k }}{{ end }}
{{- if $v.oidc.enabled }}
{{- $o := dict "enabled" true "issuerUrl" $v.oidc.issuerUrl "clientId" $v.oidc.clientId }}
{{- range $key := list "cliClientId" "usernameClaim" "tokenType" "emailVerifiedWhenAbsent" "clockSkew" "jwksMinRefreshInterval" "jwksRefreshInterval" "additionalScopes" "audiences" "algorithms" "additionalParameters" "userParameters" }}
{{- with index $v.oidc $key }}{{ $_ := set $o $key . }}{{ end }}
{{- end }}
{{- if $v.oidc.caBundle }}{{ $_ := set $o "caFile" (printf "%s/oidc-ca.pem" $p.config) }}{{ end }}
{{- if $browser }}{{ $_ := set $o "clientSecretFile" (printf "%s/oidc-client-secret" $p.secret) }}{{ end }}
{{- $_ := set $c "oidc" $o }}
{{- end }}
{{- $s := dict }}
{{- if $browser }}
{{- $_ := set $s "keyFile" (printf "%s/session-key" $p.secret) }}
{{- $_ := set $s "secureCookies" $v.session.secureCookies }}
{{- else if not $v.session.secureCookies }}
{{- $_ := set $s "secureCookies" false }}
{{- end }}
{{- range $key := list "ttl" "cookieName" }}
{{- with index $v.session $key }}{{ $_ := set $s $key . }}{{ end }}
{{- end }}
{{- if $s }}{{ $_ := set $c "session" $s }}{{ end }}
{{- $sa := dict }}
{{- range $key := list "annotationPrefix" "namespaces" "allNamespaces" "globalNamespaces" "maxStaleness" }}
{{- with index $v.serviceAccounts $key }}{{ $_ := set $sa $key . }}{{ end }}
{{- end }}
{{- if $sa }}{{ $_ := set $c "serviceAccounts" $sa }}{{ end }}
{{- $_ := set $c "fallThrough" (dict "enabled" $v.fallThrough.enabled) }}
{{- $au := $v.authentication }}
{{- if or $au.config $au.existingConfigMap.name }}
{{- $file := printf "%s/authentication-config.yaml" $p.config }}
{{- if $au.existingConfigMap.name }}{{ $file = printf "%s/authentication-config.yaml" $p.authentication }}{{ end }}
{{- $a := dict "configFile" $file }}
{{- with $au.reloadInterval }}{{ $_ := set $a "reloadInterval" . }}{{ end }}
{{- with $au.issuers }}{{ $_ := set $a "issuers" . }}{{ end }}
{{- with $au.impersonate.groups }}{{ $_ := set $a "impersonate" (dict "groups" .) }}{{ end }}
{{- $_ := set $c "authentication" $a }}
{{- end }}
{{- if $v.admin.enabled }}
{{- $a := dict "enabled" true "passwordHashFile" (printf "%s/admin-password-hash" $p.secret) "tokenSigningKeyFile" (printf "%s/admin-token-signing-key" $p.secret) }}
{{- if and $v.admin.previousTokenSigningKey (not $v.existingSecret) }}{{ $_ := set $a "previousTokenSigningKeyFile" (printf "%s/admin-previous-token-signing-key" $p.secret) }}{{ end }}
{{- range $key := list "tokenTtl" "tokenIssuer" "tokenAudience" "tokensNotBefore" "loginAllowedCidrs" "allowSystemImpersonation" }}
{{- with index $v.admin $key }}{{ $_ := set $a $key . }}{{ end }}
{{- end }}
{{- $_ := set $a "impersonate" (dict "user" $v.admin.impersonate.user "groups" $v.admin.impersonate.groups) }}
{{- $_ := set $c "admin" $a }}
{{- end }}
{{- $l := dict }}
{{- with $v.limits.maxHeaderBytes }}{{ $_ := set $l "maxHeaderBytes" (int64 .) }}{{ end }}
{{- with $v.limits.tokenCacheEntries }}{{ $_ := set $l "tokenCacheEntries" (int64 .) }}{{ end }}
{{- with $v.limits.reviewCacheTtl }}{{ $_ := set $l "reviewCacheTtl" . }}{{ end }}
{{- if $l }}{{ $_ := set $c "limits" $l }}{{ end }}
{{- toYaml $c }}
{{- end }}
