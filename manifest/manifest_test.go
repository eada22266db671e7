package manifest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionalScopes: an optional scope is one of the scopes, the app
// requires the rest, and a manifest that names an optional scope it does
// not ask for, or makes every scope optional, is refused.
func TestOptionalScopes(t *testing.T) {
	doc := func(scopes, optional string) []byte {
		return []byte(`{"bitrix24":{"scope":` + scopes + `,"optional_scope":` + optional + `,
			"install":"/install","handler":"/app","placements":[],"events":{}}}`)
	}
	m, err := Parse(doc(`["crm","placement","user_brief"]`, `["user_brief"]`))
	require.NoError(t, err)
	assert.Equal(t, []string{"crm", "placement"}, m.Required())
	assert.True(t, m.HasScope("user_brief"), "an optional scope is still asked for")

	m, err = Parse(doc(`["crm"]`, `null`))
	require.NoError(t, err)
	assert.Equal(t, []string{"crm"}, m.Required(), "no optional scopes: all required")

	_, err = Parse(doc(`["crm"]`, `["user_brief"]`))
	assert.ErrorContains(t, err, "optional scope user_brief is not in scope")
	_, err = Parse(doc(`["user_brief"]`, `["user_brief"]`))
	assert.ErrorContains(t, err, "every scope is optional")
}
