package simulator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/recorded"
)

// sameFields compares the field names of a POST with a recording's.
func sameFields(t *testing.T, f *recorded.Fixture, query, form url.Values, optional ...string) {
	t.Helper()
	keys := func(v url.Values) []string {
		var out []string
		for k := range v {
			skip := false
			for _, o := range optional {
				skip = skip || k == o
			}
			if !skip {
				out = append(out, k)
			}
		}
		return out
	}
	var want []string
	for _, k := range f.Form.Keys() {
		skip := false
		for _, o := range optional {
			skip = skip || k == o
		}
		if !skip {
			want = append(want, k)
		}
	}
	assert.ElementsMatch(t, f.Query.Keys(), keys(query), "%s: query fields; source %s", f.Name, f.Source)
	assert.ElementsMatch(t, want, keys(form), "%s: form fields; source %s", f.Name, f.Source)
}

// sameOptions compares PLACEMENT_OPTIONS byte for byte once the lead ID is
// the recording's: the same keys, and slashes escaped as PHP does.
func sameOptions(t *testing.T, f *recorded.Fixture, frame Frame, leadID int) {
	t.Helper()
	want, ok := f.Form.Get("PLACEMENT_OPTIONS")
	require.True(t, ok)
	var rec map[string]string
	require.NoError(t, json.Unmarshal([]byte(want), &rec))
	got := strings.ReplaceAll(frame.Form.Get("PLACEMENT_OPTIONS"), `"`+strconv.Itoa(leadID)+`"`, `"`+rec["ID"]+`"`)
	got = strings.ReplaceAll(got, `\/`+strconv.Itoa(leadID)+`\/`, `\/`+rec["ID"]+`\/`)
	assert.Equal(t, want, got, "%s: PLACEMENT_OPTIONS; source %s", f.Name, f.Source)
}

func TestSimulatorFramesAreAsRecorded(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	inst, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	sameFields(t, mustRecording(t, "frame_installer"), inst.Query, inst.Form)
	p.FinishInstall()
	admin := p.IssueTokens(SeedAdmin).AccessToken
	r := callJSON(t, p, "placement.bind", admin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)

	tab, err := p.OpenLeadTab(SeedSales, SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	f := mustRecording(t, "frame_lead_tab")
	sameFields(t, f, tab.Query, tab.Form)
	sameOptions(t, f, tab, SeedLeadThreeContacts)

	// Frame token = event token: the value every user's frame carries is
	// the one events carry in auth[application_token].
	ev := p.OnAppInstallEvent(SeedAdmin)
	assert.Equal(t, tab.Form.Get("APPLICATION_TOKEN"), ev.Get("auth[application_token]"))
	assert.Equal(t, inst.Form.Get("APPLICATION_TOKEN"), tab.Form.Get("APPLICATION_TOKEN"))

	old, err := s.AddPortal(PortalOptions{Seed: true, Legacy: true})
	require.NoError(t, err)
	inst, err = old.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	assert.NotContains(t, inst.Form, "SERVER_ENDPOINT")
	assert.NotContains(t, inst.Form, "APPLICATION_TOKEN")
	old.FinishInstall()
	admin = old.IssueTokens(SeedAdmin).AccessToken
	r = callJSON(t, old, "placement.bind", admin, map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	tab, err = old.OpenLeadTab(SeedSales, SeedLeadThreeContacts, "en")
	require.NoError(t, err)
	f = mustRecording(t, "frame_legacy_onprem")
	sameFields(t, f, tab.Query, tab.Form)
	sameOptions(t, f, tab, SeedLeadThreeContacts)
}

func TestSimulatorEventsAreAsRecorded(t *testing.T) {
	_, p, tok := newInstalledPortal(t)

	ev := p.OnAppInstallEvent(SeedAdmin)
	f := mustRecording(t, "event_onappinstall")
	sameFields(t, f, url.Values{}, ev)
	for _, k := range f.Form.Keys() {
		want, _ := f.Form.Get(k)
		if _, err := strconv.ParseInt(want, 10, 64); err == nil {
			_, err := strconv.ParseInt(ev.Get(k), 10, 64)
			assert.NoError(t, err, "%s is a number in the recording", k)
		}
	}
	assert.Equal(t, strconv.Itoa(SeedAdmin), ev.Get("auth[user_id]"))

	// ONAPPUNINSTALL as delivered; event_handler_id is sent by current
	// servers for bound handlers, absent from the 2022 recording.
	r := callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": "http://127.0.0.1:1/uninstall"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	_ = p.Uninstall(context.Background(), true) // the handler is unreachable: the payload is recorded anyway
	ds := p.Deliveries()
	require.Len(t, ds, 1)
	sameFields(t, mustRecording(t, "event_onappuninstall_clean1"), url.Values{}, ds[0].Payload, "event_handler_id")
	assert.Equal(t, "1", ds[0].Payload.Get("data[CLEAN]"))

	tok = mustInstall(t, p)
	r = callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": "http://127.0.0.1:1/uninstall"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	_ = p.Uninstall(context.Background(), false)
	ds = p.Deliveries()
	require.Len(t, ds, 2)
	sameFields(t, mustRecording(t, "event_onappuninstall_clean0"), url.Values{}, ds[1].Payload, "event_handler_id")
	assert.Equal(t, "0", ds[1].Payload.Get("data[CLEAN]"))
}

// TestInstallOrUpdateDropsTheInstallEventBinding follows the recording
// (server 26.800.0, bitrix-tools/b24-rest-docs PR #370): an install or
// update drops the ONAPPINSTALL binding of an app with an installer page.
func TestInstallOrUpdateDropsTheInstallEventBinding(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	for _, ev := range []string{"ONAPPINSTALL", "ONAPPUNINSTALL"} {
		r := callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": ev, "handler": "https://app.example.com/" + ev})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	}
	require.Len(t, p.Events(), 2)
	_, err := p.BeginInstall(SeedAdmin) // the update
	require.NoError(t, err)
	evs := p.Events()
	require.Len(t, evs, 1)
	assert.Equal(t, "ONAPPUNINSTALL", evs[0].Event)
}

// TestFrameFieldOrderIsTheRecordedOne: the portal's pages post the frame's
// fields in the order the server template writes them.
func TestFrameFieldOrderIsTheRecordedOne(t *testing.T) {
	f := mustRecording(t, "frame_lead_tab")
	assert.Equal(t, f.Form.Keys(), frameFieldOrder)
}
