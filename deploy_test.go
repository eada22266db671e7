package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func minimalEnv() map[string]string {
	return map[string]string{"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
		"APP_BASE_URL": "https://app.example.com"}
}

// PORT, which platforms set, beats the default; ADDR, which the operator
// sets, beats PORT.
func TestPortAndAddr(t *testing.T) {
	for _, tc := range []struct{ port, addr, want string }{
		{"", "", ":8080"},
		{"5000", "", ":5000"},
		{" 5000 ", "", ":5000"},
		{"5000", "127.0.0.1:9000", "127.0.0.1:9000"},
		{"", "127.0.0.1:9000", "127.0.0.1:9000"},
	} {
		e := minimalEnv()
		e["PORT"], e["ADDR"] = tc.port, tc.addr
		cfg, err := loadConfig(env(e))
		require.NoError(t, err, tc)
		assert.Equal(t, tc.want, cfg.Addr, "PORT=%q ADDR=%q", tc.port, tc.addr)
	}
	for _, bad := range []string{"0", "65536", "http", "80x", "-1"} {
		e := minimalEnv()
		e["PORT"] = bad
		_, err := loadConfig(env(e))
		assert.ErrorContains(t, err, "PORT must be a port number", bad)
	}
}

func TestShutdownDrainSetting(t *testing.T) {
	e := minimalEnv()
	cfg, err := loadConfig(env(e))
	require.NoError(t, err)
	assert.Zero(t, cfg.ShutdownDrain)
	e["SHUTDOWN_DRAIN_SECONDS"] = "15"
	cfg, err = loadConfig(env(e))
	require.NoError(t, err)
	assert.Equal(t, 15*time.Second, cfg.ShutdownDrain)
	for _, bad := range []string{"-1", "61", "1.5", "x"} {
		e["SHUTDOWN_DRAIN_SECONDS"] = bad
		_, err = loadConfig(env(e))
		assert.ErrorContains(t, err, "SHUTDOWN_DRAIN_SECONDS", bad)
	}
}

// -h lists every variable loadConfig reads, with its default, and the
// process exits 0 without reading the configuration.
func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, &out)
	require.NoError(t, err)
	assert.Equal(t, 0, exitCode(err, &bytes.Buffer{}))
	help := out.String()
	vars := variables()
	require.Greater(t, len(vars), 10)
	for _, v := range vars {
		line := ""
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(l, "  "+v.name+" (") {
				line = l
			}
		}
		if !assert.NotEmpty(t, line, "-h does not list %s", v.name) {
			continue
		}
		switch {
		case v.def != "":
			assert.Contains(t, line, fmt.Sprintf("default %q", v.def), v.name)
		default:
			assert.Regexp(t, `\((required|default empty)\)$`, line, v.name)
		}
	}
	assert.Contains(t, help, "-demo")
	assert.Contains(t, help, `  ADDR (default ":8080", or ":$PORT" when PORT is set)`)
}

// Startup errors are JSON lines like everything else the app prints: a
// bad flag and a bad configuration both come out as one JSON object on
// stderr with exit status 1, and stdout holds nothing that is not JSON.
func TestStartupErrorsAreJSON(t *testing.T) {
	for name, args := range map[string][]string{"bad flag": {"-nope"}, "bad configuration": nil} {
		t.Run(name, func(t *testing.T) {
			e := minimalEnv()
			e["APP_SECRET"] = "sentinel-too-short"
			e["ADDR"] = freeAddr(t)
			var out, stderr bytes.Buffer
			err := run(t.Context(), args, env(e), &out)
			require.Error(t, err)
			assert.Equal(t, 1, exitCode(err, &stderr))
			assert.Empty(t, strings.TrimSpace(out.String()), "nothing printed on stdout")
			var line map[string]any
			require.NoError(t, json.Unmarshal(stderr.Bytes(), &line), "stderr: %s", stderr.String())
			assert.Equal(t, "ERROR", line["level"])
			assert.NotEmpty(t, line["err"])
			assert.NotContains(t, stderr.String(), "sentinel")
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line")
		})
	}
}

// The SQLite default refuses to start on a missing or read-only volume,
// with a message that says what to do, and before it listens: no data
// lands on a disk the next deploy wipes.
func TestRefusesAMissingOrReadOnlySQLiteVolume(t *testing.T) {
	start := func(t *testing.T, dsn string) (string, error) {
		e := minimalEnv()
		e["DATABASE_URL"], e["ADDR"] = dsn, freeAddr(t)
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := run(ctx, nil, env(e), &out)
		return out.String(), err
	}
	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "volume")
		out, err := start(t, "sqlite:"+dir+"/app.db")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "DATABASE_URL")
		assert.Contains(t, err.Error(), "does not exist: mount a persistent, writable volume there")
		assert.NoDirExists(t, dir, "the directory was not created")
		assert.NotContains(t, out, `"msg":"serving"`)
	})
	t.Run("read-only directory", func(t *testing.T) {
		dir := worldDir(t)
		require.NoError(t, os.Chmod(dir, 0o555))
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		err := asUnprivileged(t, func() error { return checkSQLiteVolume("sqlite:" + dir + "/app.db") })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "is read-only for this process")
		assert.Contains(t, err.Error(), "mount a persistent, writable volume")
	})
	t.Run("read-only file", func(t *testing.T) {
		dir := worldDir(t)
		require.NoError(t, os.Chmod(dir, 0o777)) // #nosec G302 -- the directory takes files; the database file does not
		db := filepath.Join(dir, "app.db")
		require.NoError(t, os.WriteFile(db, nil, 0o444))
		err := asUnprivileged(t, func() error { return checkSQLiteVolume("sqlite:" + db) })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the database file is read-only")
	})
	t.Run("writable", func(t *testing.T) {
		assert.NoError(t, checkSQLiteVolume("sqlite:"+filepath.Join(t.TempDir(), "app.db")))
		assert.NoError(t, checkSQLiteVolume("sqlite::memory:"))
		assert.NoError(t, checkSQLiteVolume("postgres://u@h/db"))
	})
}

// worldDir is a fresh directory that any user can reach (t.TempDir's
// parents are private to the test's user).
func worldDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "leadcontacts-volume-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755)) // #nosec G302 -- a test directory nobody must be able to reach
	dir := filepath.Join(base, "volume")
	require.NoError(t, os.Mkdir(dir, 0o755))
	return dir
}

// asUnprivileged runs fn with the file-system permissions of an ordinary
// user: root (as in CI) writes anywhere, which is exactly what the check
// must not assume of the app's user in a container. As root it switches
// this thread's file-system user id to nobody for the call (setfsuid(2)
// drops CAP_DAC_OVERRIDE with it) and back.
func asUnprivileged(t *testing.T, fn func() error) error {
	t.Helper()
	if os.Geteuid() != 0 {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const nobody = 65534
	setfsuid := func(uid uintptr) { _, _, _ = syscall.RawSyscall(syscall.SYS_SETFSUID, uid, 0, 0) }
	setfsuid(nobody)
	defer setfsuid(0)
	// setfsuid reports the previous id, never an error: ask again.
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, nobody, 0, 0)
	require.Equal(t, uintptr(nobody), prev, "this thread's file-system user is nobody")
	return fn()
}

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

// F3: the process refuses to start — before it serves anything — when
// APP_SECRET is missing, too short or not a key, or when the previous
// secret is unusable; the message names the variable and never echoes a
// value. The port it was given stays free, so nothing was served.
func TestRefusesToStartWithoutAGoodSecret(t *testing.T) {
	good := strings.Repeat("ab", 32)
	cases := []struct {
		name, secret, previous, want string
	}{
		{"missing", "", "", "APP_SECRET is required"},
		{"blank", "   ", "", "APP_SECRET is required"},
		{"16 bytes", strings.Repeat("5e", 16), "", "APP_SECRET holds 16 bytes, needs at least 32"},
		{"31 bytes", strings.Repeat("5e", 31), "", "APP_SECRET holds 31 bytes, needs at least 32"},
		{"not hex or base64", "sentinel-not-a-key-!!-" + strings.Repeat("x", 40), "", "APP_SECRET is neither hex nor base64"},
		{"previous too short", good, strings.Repeat("5e", 8), "APP_SECRET_PREVIOUS holds 8 bytes"},
		{"previous equals current", good, good, "previous master equals the current one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			env := map[string]string{
				"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "sentinel-client-secret",
				"APP_BASE_URL": "https://app.example.com", "APP_SECRET": tc.secret, "APP_SECRET_PREVIOUS": tc.previous,
				"DATABASE_URL": "sqlite:" + t.TempDir() + "/app.db", "ADDR": addr,
			}
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, nil, func(k string) string { return env[k] }, &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			for _, v := range []string{"sentinel", strings.Repeat("5e", 8)} {
				assert.NotContains(t, err.Error(), v, "the message echoes a secret")
				assert.NotContains(t, out.String(), v, "the output echoes a secret")
			}
			assert.NotContains(t, out.String(), "App listening")
			ln, err := net.Listen("tcp", addr)
			require.NoError(t, err, "the app left its port bound")
			ln.Close()
		})
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
