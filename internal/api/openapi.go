package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// openapiJSON is the API's OpenAPI 3.0 document. It is written by hand, for
// its descriptions; TestOpenAPIMatchesRoutes keeps its paths, methods and
// roles equal to the route table, and its main schemas to the Go types.
//
//go:embed openapi.json
var openapiJSON []byte

// openAPIDocument returns the document with this build's version.
func (h *Handler) openAPIDocument() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		return nil, fmt.Errorf("api: the embedded openapi.json is not valid JSON: %w", err)
	}
	info, ok := doc["info"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("api: the embedded openapi.json has no info object")
	}
	info["version"] = h.version
	return json.Marshal(doc)
}
