// Package api holds the OpenAPI document of the simtix server's HTTP API,
// embedded for the server's tests and for tools.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
