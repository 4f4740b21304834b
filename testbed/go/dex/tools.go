//go:build tools

// Package tools pins the Dex command.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
