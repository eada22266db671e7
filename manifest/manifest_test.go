package manifest

import (
	"os"
	"strings"
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

// bitrixLangs are the 19 LANG codes Bitrix24 opens apps in.
var bitrixLangs = []string{"en", "ru", "de", "la", "br", "fr", "it", "pl", "tr", "ua", "kz", "ja", "sc", "tc", "vn", "id", "ms", "th", "ar"}

// TestAppJSONPlacements: the app's own app.json binds the lead card's tab
// and the lead list's row menu, each on a handler of its own and titled
// in every Bitrix24 language.
func TestAppJSONPlacements(t *testing.T) {
	b, err := os.ReadFile("../app.json")
	require.NoError(t, err)
	m, err := Parse(b)
	require.NoError(t, err)
	handlers := map[string]bool{}
	for _, code := range []string{"CRM_LEAD_DETAIL_TAB", "CRM_LEAD_LIST_MENU"} {
		pl, ok := m.Placement(code)
		require.True(t, ok, "app.json binds %s", code)
		assert.False(t, handlers[pl.Handler], "%s has a handler of its own", code)
		handlers[pl.Handler] = true
		for _, lang := range bitrixLangs {
			assert.NotEmpty(t, strings.TrimSpace(pl.Title[lang]), "%s is titled in %s", code, lang)
		}
		assert.Len(t, pl.Title, len(bitrixLangs), "%s: no title in a language Bitrix24 lacks", code)
	}
	list, _ := m.Placement("CRM_LEAD_LIST_MENU")
	assert.Equal(t, "/placements/lead-list-menu", list.Handler)
	assert.Equal(t, "Remove all contacts", list.Title["en"], "the menu item says what the tab's button says")
}

// TestAppJSONRobot: app.json registers the automation rule "Remove all
// contacts" on a handler of its own, named, described and with both return
// values named in every Bitrix24 language, and asks for bizproc as an
// optional scope (the tab works without it).
func TestAppJSONRobot(t *testing.T) {
	b, err := os.ReadFile("../app.json")
	require.NoError(t, err)
	m, err := Parse(b)
	require.NoError(t, err)
	require.Len(t, m.Robots, 1)
	r := m.Robots[0]
	assert.Equal(t, "leadcontacts_remove_all", r.Code)
	assert.Equal(t, "/robots/remove-contacts", r.Handler)
	assert.Contains(t, m.OptionalScope, "bizproc")
	for _, lang := range bitrixLangs {
		assert.NotEmpty(t, strings.TrimSpace(r.Name[lang]), "named in %s", lang)
		assert.NotEmpty(t, strings.TrimSpace(r.Description[lang]), "described in %s", lang)
		for _, p := range r.ReturnProperties {
			assert.NotEmpty(t, strings.TrimSpace(p.Name[lang]), "return value %s named in %s", p.Code, lang)
		}
	}
	assert.Len(t, r.Name, len(bitrixLangs))
	var codes []string
	for _, p := range r.ReturnProperties {
		codes = append(codes, p.Code+":"+p.Type)
	}
	assert.Equal(t, []string{"outcome:string", "count:int"}, codes)
}

// TestRobotProblems: a robot without the bizproc scope, with a code
// Bitrix24 refuses, sharing the install handler, or without an English
// name is refused at startup, not at the first install.
func TestRobotProblems(t *testing.T) {
	doc := func(scope, robot string) []byte {
		return []byte(`{"bitrix24":{"scope":` + scope + `,"install":"/install","handler":"/app",
			"placements":[],"events":{},"robots":[` + robot + `]}}`)
	}
	good := `{"code":"a.b-c_d","handler":"/robots/x","name":{"en":"X"},"return_properties":[{"code":"n","type":"int","name":{"en":"N"}}]}`
	_, err := Parse(doc(`["crm","bizproc"]`, good))
	require.NoError(t, err)
	for name, c := range map[string]struct{ scope, robot, want string }{
		"no bizproc scope": {`["crm"]`, good, "robots need the bizproc scope"},
		"bad code":         {`["bizproc"]`, `{"code":"a b","handler":"/r","name":{"en":"X"}}`, "unique code"},
		"install handler":  {`["bizproc"]`, `{"code":"a","handler":"/install","name":{"en":"X"}}`, "handler path of its own"},
		"no English name":  {`["bizproc"]`, `{"code":"a","handler":"/r","name":{"ru":"X"}}`, "English name"},
		"bad property":     {`["bizproc"]`, `{"code":"a","handler":"/r","name":{"en":"X"},"return_properties":[{"code":"1n","type":"int","name":{"en":"N"}}]}`, "return property"},
		"duplicate code":   {`["bizproc"]`, `{"code":"a","handler":"/r","name":{"en":"X"}},{"code":"a","handler":"/s","name":{"en":"X"}}`, "unique code"},
	} {
		_, err := Parse(doc(c.scope, c.robot))
		assert.ErrorContains(t, err, c.want, name)
	}
}
