package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigHistoryRetention(t *testing.T) {
	base := map[string]string{
		"B24_CLIENT_ID": "app.1", "B24_CLIENT_SECRET": "s", "APP_SECRET": strings.Repeat("ab", 32),
		"APP_BASE_URL": "https://app.example.com",
	}
	cfg, err := loadConfig(env(base))
	require.NoError(t, err)
	assert.Equal(t, 90*24*time.Hour, cfg.HistoryRetention, "90 days unless configured")

	base["HISTORY_RETENTION_DAYS"] = "7"
	cfg, err = loadConfig(env(base))
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, cfg.HistoryRetention)

	for _, bad := range []string{"0", "-1", "3651", "ninety", "1.5"} {
		base["HISTORY_RETENTION_DAYS"] = bad
		_, err = loadConfig(env(base))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "HISTORY_RETENTION_DAYS", bad)
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
