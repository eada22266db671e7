package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appJSONKeys are the top-level keys of the app.json schema
// (https://devcenter.heroku.com/articles/app-json-schema). "bitrix24" is
// this app's own extension (manifest.Parse reads it); Heroku ignores keys
// it does not know, so it is the one extra key allowed.
var appJSONKeys = []string{"name", "description", "keywords", "website", "repository", "logo", "success_url",
	"scripts", "env", "formation", "image", "addons", "buildpacks", "environments", "stack", "bitrix24"}

// TestAppJSONFollowsTheSchema checks app.json against the rules of the
// app.json schema that Go can check without the platform: allowed keys and
// their types, the name and description limits, env entries, add-ons and
// the formation; then what this app needs on such a platform: the
// PostgreSQL add-on, a generated APP_SECRET, no value that would pin the
// listen address or the database, and env equal to what loadConfig reads,
// with the same defaults.
func TestAppJSONFollowsTheSchema(t *testing.T) {
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(appJSON))
	require.NoError(t, dec.Decode(&doc))
	for k := range doc {
		assert.Contains(t, appJSONKeys, k, "app.json key %q is not in the schema", k)
	}
	str := func(key string, maxLen int) string {
		var s string
		require.NoError(t, json.Unmarshal(doc[key], &s), "%s must be a string", key)
		if maxLen > 0 {
			assert.LessOrEqual(t, utf8.RuneCountInString(s), maxLen, "%s is longer than the schema allows", key)
		}
		return s
	}
	name := str("name", 30)
	assert.GreaterOrEqual(t, len(name), 3, "name")
	assert.NotEmpty(t, str("description", 140))
	for _, k := range []string{"website", "repository", "logo"} {
		if _, ok := doc[k]; ok {
			u, err := url.Parse(str(k, 0))
			require.NoError(t, err, k)
			assert.Contains(t, []string{"http", "https"}, u.Scheme, "%s must be an absolute URL", k)
		}
	}
	if raw, ok := doc["keywords"]; ok {
		var kw []string
		assert.NoError(t, json.Unmarshal(raw, &kw), "keywords must be an array of strings")
	}
	if raw, ok := doc["scripts"]; ok {
		var sc map[string]string
		assert.NoError(t, json.Unmarshal(raw, &sc), "scripts must map names to commands")
	}

	// formation: process type → {quantity, size}.
	var formation map[string]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(doc["formation"], &formation), "formation must be an object of objects")
	require.Contains(t, formation, "web", "the Procfile's web process")
	for proc, f := range formation {
		for k, v := range f {
			switch k {
			case "quantity":
				var n uint
				assert.NoError(t, json.Unmarshal(v, &n), "formation.%s.quantity must be a whole number", proc)
			case "size":
				var s string
				assert.NoError(t, json.Unmarshal(v, &s), "formation.%s.size must be a string", proc)
			default:
				t.Errorf("formation.%s has key %q outside the schema", proc, k)
			}
		}
	}

	// addons: strings or {plan, as, options}; PostgreSQL for several dynos
	// (a dyno's disk is ephemeral, so the SQLite default would lose data).
	var addons []json.RawMessage
	require.NoError(t, json.Unmarshal(doc["addons"], &addons), "addons must be an array")
	var plans []string
	for _, a := range addons {
		var s string
		if json.Unmarshal(a, &s) == nil {
			plans = append(plans, s)
			continue
		}
		var o map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(a, &o), "an add-on is a string or an object")
		for k := range o {
			assert.Contains(t, []string{"plan", "as", "options"}, k, "add-on key %q", k)
		}
		require.NoError(t, json.Unmarshal(o["plan"], &s), "an add-on object needs a plan")
		plans = append(plans, s)
	}
	assert.True(t, slices.ContainsFunc(plans, func(p string) bool {
		return p == "heroku-postgresql" || strings.HasPrefix(p, "heroku-postgresql:")
	}), "addons %v lack heroku-postgresql", plans)

	// env: name → string (a value) or {description, value, required, generator}.
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(doc["env"], &env), "env must be an object")
	type entry struct {
		Description string
		Value       *string
		Required    bool
		Generator   string
	}
	entries := map[string]entry{}
	for name, raw := range env {
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &fields), "env %s: this app documents every variable, so each is an object", name)
		var e entry
		for k, v := range fields {
			var err error
			switch k {
			case "description":
				err = json.Unmarshal(v, &e.Description)
			case "value":
				err = json.Unmarshal(v, &e.Value)
			case "required":
				err = json.Unmarshal(v, &e.Required)
			case "generator":
				err = json.Unmarshal(v, &e.Generator)
				assert.Equal(t, "secret", e.Generator, "env %s: the only generator is \"secret\"", name)
			default:
				t.Errorf("env %s has key %q outside the schema", name, k)
			}
			assert.NoError(t, err, "env %s.%s has the wrong type", name, k)
		}
		assert.NotEmpty(t, e.Description, "env %s needs a description", name)
		if e.Generator != "" {
			assert.Nil(t, e.Value, "env %s: a generated variable has no value", name)
		}
		entries[name] = e
	}
	assert.Equal(t, "secret", entries["APP_SECRET"].Generator, "APP_SECRET is generated on deploy")
	assert.True(t, entries["APP_SECRET"].Required)
	// A value in app.json becomes a config var on deploy: ADDR would win
	// over the platform's PORT, DATABASE_URL would fight the add-on's.
	for _, name := range []string{"ADDR", "PORT", "DATABASE_URL"} {
		assert.Nil(t, entries[name].Value, "env %s must have no value", name)
	}

	// The env list is exactly what loadConfig reads, defaults included.
	var names []string
	for _, v := range variables() {
		names = append(names, v.name)
		e, ok := entries[v.name]
		if !assert.True(t, ok, "app.json lacks %s, which loadConfig reads", v.name) {
			continue
		}
		if e.Value != nil {
			assert.Equal(t, v.def, *e.Value, "app.json's value of %s is not loadConfig's default", v.name)
		}
		if e.Required {
			assert.Empty(t, v.def, "%s is required, so it has no default", v.name)
		}
	}
	for name := range entries {
		assert.Contains(t, names, name, "app.json documents %s, which loadConfig never reads", name)
	}
}

// TestProcfileStartsTheWebProcess: the Procfile starts the binary the Go
// buildpack builds (bin/ + the module's last element) as the web process.
func TestProcfileStartsTheWebProcess(t *testing.T) {
	b, err := os.ReadFile("Procfile")
	require.NoError(t, err)
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	module := strings.Fields(strings.SplitN(string(gomod), "\n", 2)[0])[1]
	bin := "bin/" + module[strings.LastIndex(module, "/")+1:]
	procs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, cmd, ok := strings.Cut(line, ":")
		require.True(t, ok, "Procfile line %q", line)
		procs[name] = strings.TrimSpace(cmd)
	}
	assert.Equal(t, bin, procs["web"])
}
