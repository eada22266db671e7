package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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
