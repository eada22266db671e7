package simulator

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runHarness runs the shim and the portal script under Node with fake,
// origin-checked windows (testdata/bx24_harness.js). Headless Chromium tests
// elsewhere cover the real browser; this pins the message protocol cheaply.
func runHarness(t *testing.T, kind string) map[string]any {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is required in CI for the BX24 shim protocol test")
		}
		t.Skip("node not installed; skipping the BX24 shim protocol test")
	}
	out, err := exec.CommandContext(t.Context(), node, "testdata/bx24_harness.js", "assets/bx24.js", "assets/portal.js", kind).Output()
	require.NoError(t, err)
	var report map[string]any
	require.NoError(t, json.Unmarshal(out, &report), "%s", out)
	return report
}

func TestShimProtocolPlacement(t *testing.T) {
	r := runHarness(t, "placement")
	assert.Empty(t, r["dropped"], "every message went to the right origin")
	assert.Equal(t, float64(1), r["submits"], "the portal posts the frame form once")
	init := r["initInfo"].(map[string]any)
	assert.Equal(t, map[string]any{"placement": "CRM_LEAD_DETAIL_TAB", "options": map[string]any{"ID": "1"}}, init["info"])
	assert.Equal(t, "de", init["lang"])
	assert.Equal(t, "127.0.0.1:7001", init["domain"])
	assert.Equal(t, true, init["admin"])
	assert.Equal(t, "tok1", init["auth"].(map[string]any)["access_token"])
	assert.Equal(t, true, r["authExpiresIsTimestamp"], "getAuth().expires_in is a timestamp")
	assert.Equal(t, "1234px", r["frameHeight"], "fitWindow uses the scroll height")
	assert.Equal(t, map[string]any{"command": []any{"reloadData"}, "event": []any{}}, r["iface"])
	assert.Equal(t, map[string]any{}, r["reload"])
	assert.Equal(t, []any{
		map[string]any{"id": "2", "text": "Анна <b>x</b>", "primary": true},
		map[string]any{"id": "3", "text": "Siobhán", "primary": false},
	}, r["contacts"], "reloadData re-renders from the JSON, as text")
	assert.Equal(t, true, r["emptyHidden"])
	assert.Equal(t, "__timeout__", r["unknown"], "unknown placement.call commands get no callback")
	assert.Equal(t, true, r["forgedIgnored"], "the parent ignores foreign windows, origins and APP_SIDs")
	assert.Equal(t, false, r["forgedCallback"], "the shim ignores foreign windows, origins and APP_SIDs")
	assert.Equal(t, true, r["sliderShown"])
	assert.Equal(t, "/crm/contact/details/2/", r["sliderSrc"])
	assert.Nil(t, r["closedBeforeClick"])
	assert.Equal(t, map[string]any{"result": "close"}, r["closed"], "openPath calls back when the slider closes")
	assert.Equal(t, true, r["evilPathIgnored"])
	assert.Equal(t, "tok2", r["refreshed"].(map[string]any)["access_token"])
	assert.Empty(t, r["assigned"], "installFinish outside the installer is ignored")
}

func TestShimProtocolInstaller(t *testing.T) {
	r := runHarness(t, "installer")
	assert.Equal(t, map[string]any{"placement": "DEFAULT", "options": map[string]any{}}, r["initInfo"].(map[string]any)["info"])
	fetches := r["fetches"].([]any)
	require.NotEmpty(t, fetches)
	last := fetches[len(fetches)-1].(map[string]any)
	assert.Equal(t, "/sim/api/install-finish", last["url"])
	assert.Equal(t, "POST", last["method"])
	assert.Equal(t, "app_sid=sid123", last["body"])
	assert.Equal(t, []any{"/"}, r["assigned"], "after installFinish the portal goes home")
	assert.Equal(t, "__timeout__", r["reload"], "reloadData is a CRM card command")
}
