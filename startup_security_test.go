package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
