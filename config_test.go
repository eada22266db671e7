package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestConfigSettings: each optional setting has its default, takes a
// valid value, and a bad one is refused with the variable's name (the
// portal limit has a test of its own, TestPortalLimit).
func TestConfigSettings(t *testing.T) {
	cases := []struct {
		name, value string
		get         func(Config) any
		def, want   any // def nil: empty unless configured
		bad         []string
	}{
		{
			name: "UNINSTALL_GRACE_HOURS", value: "72",
			get: func(c Config) any { return c.UninstallGrace },
			def: 24 * time.Hour, want: 72 * time.Hour,
			bad: []string{"0", "-3", "1.5", "721", "x"},
		},
		{
			name: "TRUSTED_PROXIES", value: "10.0.0.0/8, 192.168.1.7,fd00::/8",
			get:  func(c Config) any { return c.TrustedProxies },
			want: []string{"10.0.0.0/8", "192.168.1.7", "fd00::/8"},
			bad:  []string{"10.0.0.0/8,proxy.internal"},
		},
		{
			name: "HISTORY_RETENTION_DAYS", value: "7",
			get: func(c Config) any { return c.HistoryRetention },
			def: 90 * 24 * time.Hour, want: 7 * 24 * time.Hour,
			bad: []string{"0", "-1", "3651", "ninety", "1.5"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := map[string]string{
				"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
				"APP_BASE_URL": "https://app.example.com",
			}
			cfg, err := loadConfig(env(base))
			require.NoError(t, err)
			if tc.def == nil {
				assert.Empty(t, tc.get(cfg), "none unless configured")
			} else {
				assert.Equal(t, tc.def, tc.get(cfg), "the default")
			}
			base[tc.name] = tc.value
			cfg, err = loadConfig(env(base))
			require.NoError(t, err)
			assert.Equal(t, tc.want, tc.get(cfg))
			for _, bad := range tc.bad {
				base[tc.name] = bad
				_, err = loadConfig(env(base))
				require.Error(t, err, bad)
				assert.Contains(t, err.Error(), tc.name, bad)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"B24_CLIENT_SECRET": "sentinel-client-secret",
		"APP_SECRET":        "too-short-sentinel",
		"APP_BASE_URL":      "http://app.example.com",
		"DATABASE_URL":      "mysql://x",
		"B24_OAUTH_SERVERS": "https://oauth.bitrix.info/path",
		"B24_ALLOW_HTTP":    "maybe",
	}))
	require.Error(t, err)
	msg := err.Error()
	for _, name := range []string{"B24_CLIENT_ID", "APP_SECRET", "APP_BASE_URL", "DATABASE_URL", "B24_OAUTH_SERVERS", "B24_ALLOW_HTTP"} {
		assert.Contains(t, msg, name)
	}
	assert.NotContains(t, msg, "sentinel")
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(env(map[string]string{
		"B24_CLIENT_ID":     "app.1",
		"B24_CLIENT_SECRET": "s",
		"APP_SECRET":        strings.Repeat("ab", 32),
		"APP_BASE_URL":      "https://app.example.com",
	}))
	require.NoError(t, err)
	assert.Equal(t, "sqlite:data/app.db", cfg.DatabaseURL)
	assert.Equal(t, ":8080", cfg.Addr)
	assert.Equal(t, []string{"https://oauth.bitrix.info", "https://oauth.bitrix24.tech"}, cfg.OAuthServers)
	assert.False(t, cfg.AllowHTTP)
	assert.Equal(t, "https://api.bitrix24.com/api/v1/", cfg.JSURL)
	assert.Len(t, cfg.Secret, 32)
}

func TestConfigAllowHTTP(t *testing.T) {
	cfg, err := loadConfig(env(map[string]string{
		"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
		"APP_BASE_URL": "http://127.0.0.1:8080", "B24_ALLOW_HTTP": "true",
		"B24_OAUTH_SERVERS": "http://127.0.0.1:9000/", "APP_SECRET_PREVIOUS": strings.Repeat("cd", 32),
		"DATABASE_URL": "postgres://u@h/db",
	}))
	require.NoError(t, err)
	assert.Equal(t, []string{"http://127.0.0.1:9000"}, cfg.OAuthServers)
	assert.Len(t, cfg.SecretPrevious, 32)
}

// TestPortalLimit: B24_PORTAL_RATE takes any positive rate or off, and
// B24_PORTAL_BURST defaults to what the rate implies on the standard plan,
// so dividing the rate among instances divides the bucket too.
func TestPortalLimit(t *testing.T) {
	base := map[string]string{
		"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
		"APP_BASE_URL": "https://app.example.com",
	}
	for _, tc := range []struct {
		rate, burst string
		wantRate    rate.Limit
		wantBurst   int
	}{
		{"", "", 2, 50},                  // Bitrix24's standard plan
		{"1", "", 1, 25},                 // two instances behind one egress IP
		{"0.6667", "", 0.6667, 16},       // three: the shares never add up past 50
		{"5", "250", 5, 250},             // Enterprise
		{"100", "", 100, 2500},           // an on-premise portal with its own limits
		{"0.001", "", 0.001, 1},          // the slowest accepted: a bucket of one
		{"2", "10", 2, 10},               // an explicit bucket wins
		{"off", "", rate.Inf, 0},         // behind a gateway that limits, or benchmarks
		{"OFF", "", rate.Inf, 0},         // as the operator types it
		{" 1.5 ", " 30 ", 1.5, 30},       // stray spaces
		{"1e6", "", 1e6, maxPortalBurst}, // a huge rate keeps the bucket in range
	} {
		base["B24_PORTAL_RATE"], base["B24_PORTAL_BURST"] = tc.rate, tc.burst
		cfg, err := loadConfig(env(base))
		require.NoError(t, err, "%q %q", tc.rate, tc.burst)
		assert.Equal(t, tc.wantRate, cfg.PortalRate, "%q %q", tc.rate, tc.burst)
		assert.Equal(t, tc.wantBurst, cfg.PortalBurst, "%q %q", tc.rate, tc.burst)
	}
	for _, tc := range []struct{ name, value string }{
		{"B24_PORTAL_RATE", "0"}, {"B24_PORTAL_RATE", "-1"}, {"B24_PORTAL_RATE", "x"},
		{"B24_PORTAL_RATE", "NaN"}, {"B24_PORTAL_RATE", "Inf"}, {"B24_PORTAL_RATE", "0.0001"},
		{"B24_PORTAL_RATE", "2/s"}, {"B24_PORTAL_BURST", "0"}, {"B24_PORTAL_BURST", "-5"},
		{"B24_PORTAL_BURST", "2.5"}, {"B24_PORTAL_BURST", "10001"}, {"B24_PORTAL_BURST", "lots"},
	} {
		base["B24_PORTAL_RATE"], base["B24_PORTAL_BURST"] = "", ""
		base[tc.name] = tc.value
		_, err := loadConfig(env(base))
		require.Error(t, err, "%s=%s", tc.name, tc.value)
		assert.Contains(t, err.Error(), tc.name+" must be", "%s=%s names the variable and what it takes", tc.name, tc.value)
	}
}

// TestEveryVariableIsDocumented keeps app.json, the README table and the
// variables loadConfig reads in step.
func TestEveryVariableIsDocumented(t *testing.T) {
	var manifest struct {
		Env map[string]json.RawMessage `json:"env"`
	}
	require.NoError(t, json.Unmarshal(appJSON, &manifest))
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	read := map[string]bool{}
	_, _ = loadConfig(func(k string) string { read[k] = true; return "" })
	for name := range manifest.Env {
		assert.Contains(t, string(readme), "| `"+name+"` |", "README table lacks %s", name)
		assert.True(t, read[name], "loadConfig does not read %s", name)
	}
	for name := range read {
		assert.Contains(t, manifest.Env, name, "app.json lacks %s", name)
	}
}

// TestBaseURLMustBeOneBitrix24Accepts: a real portal refuses handlers
// whose host has no dot (ERROR_WRONG_HANDLER_URL, recorded) and cannot
// reach local addresses, so production mode refuses to start with one.
func TestBaseURLMustBeOneBitrix24Accepts(t *testing.T) {
	base := map[string]string{"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32)}
	for _, tt := range []struct {
		url, want string
	}{
		{"https://localhost:8443", "ERROR_WRONG_HANDLER_URL"},
		{"https://intranet", "ERROR_WRONG_HANDLER_URL"},
		{"https://app.localhost", "ERROR_WRONG_HANDLER_URL"},
		{"https://127.0.0.1", "cannot reach"},
		{"https://10.1.2.3", "cannot reach"},
		{"https://[::1]:8443", "cannot reach"},
		{"http://app.example.com", "must use https"},
	} {
		base["APP_BASE_URL"] = tt.url
		_, err := loadConfig(env(base))
		require.Error(t, err, tt.url)
		assert.Contains(t, err.Error(), "APP_BASE_URL", tt.url)
		assert.Contains(t, err.Error(), tt.want, tt.url)
	}
	for _, ok := range []string{"https://app.example.com", "https://contacts.example.com:8443/b24", "https://203.0.113.9"} {
		base["APP_BASE_URL"] = ok
		_, err := loadConfig(env(base))
		assert.NoError(t, err, ok)
	}
	// Local development with B24_ALLOW_HTTP=true (the demo, the tests).
	base["APP_BASE_URL"], base["B24_ALLOW_HTTP"] = "http://127.0.0.1:8080", "true"
	_, err := loadConfig(env(base))
	assert.NoError(t, err)
}

// TestConfigNeverEchoesUserInfo: a B24_OAUTH_SERVERS entry with
// user:password is refused without repeating the password.
func TestConfigNeverEchoesUserInfo(t *testing.T) {
	for _, entry := range []string{"https://admin:hunter2-sentinel@oauth.example.com", "https://admin:hunter2-sentinel@oauth.example.com:bad:port/x"} {
		_, err := loadConfig(env(map[string]string{
			"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
			"APP_BASE_URL": "https://app.example.com", "B24_OAUTH_SERVERS": entry,
		}))
		require.Error(t, err, entry)
		assert.Contains(t, err.Error(), "B24_OAUTH_SERVERS")
		assert.NotContains(t, err.Error(), "hunter2-sentinel")
		assert.NotContains(t, err.Error(), "admin:")
	}
}

// TestAppJSONDocumentsHistoryRetention: app.json documents every variable
// with its default, and the README table mirrors it.
func TestAppJSONDocumentsHistoryRetention(t *testing.T) {
	var doc struct {
		Env map[string]struct {
			Value string `json:"value"`
		} `json:"env"`
		Bitrix24 struct {
			Handler string `json:"handler"`
		} `json:"bitrix24"`
	}
	require.NoError(t, json.Unmarshal(appJSON, &doc))
	assert.Equal(t, "90", doc.Env["HISTORY_RETENTION_DAYS"].Value)
	assert.Equal(t, "/app", doc.Bitrix24.Handler)
}
