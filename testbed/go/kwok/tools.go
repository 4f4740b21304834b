//go:build tools

// Package tools pins the kwok command (the simulated node agent serving the kubelet API).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
