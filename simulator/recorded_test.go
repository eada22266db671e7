package simulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/recorded"
)

// These tests hold the simulator to what real Bitrix24 servers send
// (testdata/recorded/, one fixture per row of the platform doc's
// "Recorded behaviour" table): for each recording the simulator is put in
// the same situation and must answer with the same status and the same
// shape (keys and JSON types), and with the same error code and text.

func mustRecording(t *testing.T, name string) *recorded.Fixture {
	t.Helper()
	f, err := recorded.Load(name)
	require.NoError(t, err)
	return f
}

func mustShape(t *testing.T, raw []byte) string {
	t.Helper()
	s, err := recorded.Shape(raw)
	require.NoError(t, err, "%s", raw)
	return s
}

// sameAnswer compares an HTTP answer with a recording: status and shape
// always, and the whole body when exact (error answers, whose text the
// recording fixes).
func sameAnswer(t *testing.T, f *recorded.Fixture, status int, body []byte, exact bool) {
	t.Helper()
	assert.Equal(t, f.Status, status, "%s: status; source %s", f.Name, f.Source)
	assert.Equal(t, mustShape(t, f.Body), mustShape(t, body), "%s: shape; source %s", f.Name, f.Source)
	if exact {
		assert.JSONEq(t, string(f.Body), string(body), "%s: body; source %s", f.Name, f.Source)
	}
}

// part returns the raw JSON of one top-level key of a body.
func part(t *testing.T, body []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	require.Contains(t, m, key, "%s", body)
	return m[key]
}

func TestSimulatorTokenAnswersAreShapedAsRecorded(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	r := tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	for _, name := range []string{"token_refresh_2022_bitrix_info", "token_refresh_2026_bitrix24_tech"} {
		f := mustRecording(t, name)
		sameAnswer(t, f, r.Status, r.Raw, false)
		var rec map[string]any
		require.NoError(t, json.Unmarshal(f.Body, &rec))
		assert.Equal(t, rec["scope"], r.Body["scope"], "scope is the literal app")
	}
}

func TestSimulatorOAuthErrorsAreAsRecorded(t *testing.T) {
	s, _, tok := newInstalledPortal(t)
	tests := map[string]func(q url.Values){
		"oauth_wrong_client":   func(q url.Values) { q.Set("client_id", "app.unknown") },
		"oauth_invalid_client": func(q url.Values) { q.Set("client_secret", "wrong") },
		"oauth_invalid_grant":  func(q url.Values) { q.Set("refresh_token", "spent-or-never-issued") },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			q := refreshQuery(tok.RefreshToken)
			mutate(q)
			r := tokenRequest(t, s, q)
			sameAnswer(t, mustRecording(t, name), r.Status, r.Raw, true)
		})
	}
	// A spent refresh token is answered like one never issued.
	r := tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	require.Equal(t, http.StatusOK, r.Status)
	r = tokenRequest(t, s, refreshQuery(tok.RefreshToken))
	sameAnswer(t, mustRecording(t, "oauth_invalid_grant"), r.Status, r.Raw, true)
}

func TestSimulatorRESTErrorsAreAsRecorded(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	// A fresh token per call: one case moves the clock past an hour.
	fresh := func() string { return p.IssueTokens(SeedAdmin).AccessToken }
	strict := newTestSim(t, func(o *Options) { o.AllowLocalHandlers = false })
	sp := newTestPortal(t, strict)
	stok := mustInstall(t, sp)

	tests := map[string]func(t *testing.T) restResp{
		"rest_no_auth":       func(t *testing.T) restResp { return callJSON(t, p, "profile", "", nil) },
		"rest_invalid_token": func(t *testing.T) restResp { return callJSON(t, p, "profile", "0123456789abcdef", nil) },
		"rest_expired_token": func(t *testing.T) restResp {
			old := p.IssueTokens(SeedAdmin)
			s.Advance(61 * time.Minute)
			return callJSON(t, p, "profile", old.AccessToken, nil)
		},
		"rest_query_limit_exceeded": func(t *testing.T) restResp {
			q := newTestPortal(t, s)
			qt := mustInstall(t, q)
			q.SetRateLimit(1, 0.001)
			callJSON(t, q, "profile", qt.AccessToken, nil)
			return callJSON(t, q, "profile", qt.AccessToken, nil)
		},
		"rest_overload_limit": func(t *testing.T) restResp {
			p.InjectFault(OverloadLimit("profile"))
			return callJSON(t, p, "profile", fresh(), nil)
		},
		"rest_operation_time_limit": func(t *testing.T) restResp {
			p.InjectFault(OperationTimeLimit("crm.lead.list"))
			return callJSON(t, p, "crm.lead.list", fresh(), nil)
		},
		"rest_handler_already_binded": func(t *testing.T) restResp {
			params := map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"}
			require.Equal(t, http.StatusOK, callJSON(t, p, "placement.bind", fresh(), params).Status)
			return callJSON(t, p, "placement.bind", fresh(), params)
		},
		"rest_placement_bind_not_admin": func(t *testing.T) restResp {
			return callJSON(t, p, "placement.bind", p.IssueTokens(SeedSales).AccessToken,
				map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab"})
		},
		"rest_wrong_handler_url": func(t *testing.T) restResp {
			return callJSON(t, sp, "placement.bind", stok.AccessToken,
				map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://localhost/tab"})
		},
	}
	for name, run := range tests {
		t.Run(name, func(t *testing.T) {
			r := run(t)
			sameAnswer(t, mustRecording(t, name), r.Status, r.Raw, true)
		})
	}

	t.Run("event.bind already bound", func(t *testing.T) {
		params := map[string]any{"event": "ONAPPUNINSTALL", "handler": "https://app.example.com/uninstall"}
		require.Equal(t, http.StatusOK, callJSON(t, p, "event.bind", fresh(), params).Status)
		r := callJSON(t, p, "event.bind", fresh(), params)
		f := mustRecording(t, "rest_handler_already_binded")
		sameAnswer(t, f, r.Status, r.Raw, false)
		assert.Equal(t, "ERROR_CORE", r.errCode())
		assert.Equal(t, "Unable to set event handler: Handler already binded", r.errDesc(), "the event variant in the recording's note")
		assert.Contains(t, f.Note, r.errDesc())
	})
	t.Run("placement.get by a non-admin", func(t *testing.T) {
		r := callJSON(t, p, "placement.get", p.IssueTokens(SeedSales).AccessToken, nil)
		sameAnswer(t, mustRecording(t, "rest_placement_bind_not_admin"), r.Status, r.Raw, true)
	})
	t.Run("a host without a dot", func(t *testing.T) {
		r := callJSON(t, sp, "event.bind", stok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": "https://intranet/uninstall"})
		sameAnswer(t, mustRecording(t, "rest_wrong_handler_url"), r.Status, r.Raw, true)
	})
}

func TestSimulatorAnswersAreShapedAsRecorded(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	for _, tt := range []struct{ name, method string }{{"profile", "profile"}, {"app_info", "app.info"}} {
		t.Run(tt.name, func(t *testing.T) {
			f := mustRecording(t, tt.name)
			r := callJSON(t, p, tt.method, tok.AccessToken, nil)
			assert.Equal(t, f.Status, r.Status)
			assert.Equal(t, mustShape(t, part(t, f.Body, "result")), mustShape(t, part(t, r.Raw, "result")), "source %s", f.Source)
		})
	}
	t.Run("batch_answer", func(t *testing.T) {
		f := mustRecording(t, "batch_answer")
		p.InjectFault(OperationTimeLimit("crm.lead.list"))
		r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"halt": 0, "cmd": map[string]any{
			"f26b4ebc-3a82-4fe6-8d26-595d6eaf029b": "crm.lead.list",
		}})
		assert.Equal(t, f.Status, r.Status)
		assert.Equal(t, mustShape(t, part(t, f.Body, "result")), mustShape(t, part(t, r.Raw, "result")), "source %s", f.Source)
		assert.JSONEq(t, string(part(t, part(t, f.Body, "result"), "result_error")), string(part(t, part(t, r.Raw, "result"), "result_error")))
	})
}

// TestRecordingsAreComplete checks every recording has its source, is
// listed in the folder's README and holds a payload of its kind.
func TestRecordingsAreComplete(t *testing.T) {
	all, err := recorded.All("")
	require.NoError(t, err)
	require.NotEmpty(t, all)
	b, err := os.ReadFile(filepath.Join(recorded.Dir(), "README.md"))
	require.NoError(t, err)
	readme := string(b)
	for _, f := range all {
		assert.NotEmpty(t, f.Source, f.Name)
		assert.Contains(t, readme, f.Name+".json", "README lists %s", f.Name)
		switch f.Kind {
		case "oauth", "rest":
			assert.NotZero(t, f.Status, f.Name)
			assert.NotEmpty(t, f.Body, f.Name)
		case "frame", "event":
			assert.NotEmpty(t, f.Form, f.Name)
		default:
			t.Errorf("%s: unknown kind %q", f.Name, f.Kind)
		}
	}
}

// TestSimulatorBatchReferencesAreAsRecorded sends the recorded request (a
// reference past the end of a one-item list) to a portal in the same state
// and requires the recorded outcome: no error, and contact #1 answered.
func TestSimulatorBatchReferencesAreAsRecorded(t *testing.T) {
	f := mustRecording(t, "batch_reference_past_the_end")
	_, p, tok := newInstalledPortal(t)
	p.AddContact(Contact{ID: 7, Name: "Ada", LastName: "Lovelace"})
	p.AddLead(Lead{ID: 123, Title: "One link"})
	require.NoError(t, p.LinkContact(123, 7, 10, true))
	_, ok := p.Contact(1)
	require.True(t, ok, "the seed has a contact #1")

	// The recorded request, sent as JSON (its cmd keys keep their order).
	var req map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(f.Request, &req))
	body := []byte(`{"auth":"` + tok.AccessToken + `","halt":` + string(req["halt"]) + `,"cmd":` + string(req["cmd"]) + `}`)
	resp, err := testClient.Post(p.RESTEndpoint()+"batch", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	r := decodeResp(t, resp)
	require.Equal(t, f.Status, r.Status, "%s", r.Raw)

	rec, got := part(t, f.Body, "result"), part(t, r.Raw, "result")
	for _, k := range []string{"result_error", "result_total", "result_next"} {
		assert.JSONEq(t, string(part(t, rec, k)), string(part(t, got, k)), k)
	}
	var want, have struct {
		Result struct {
			Items []struct {
				ContactID json.Number `json:"CONTACT_ID"`
			} `json:"items"`
			C0 struct{ ID string } `json:"c0"`
			C3 struct{ ID string } `json:"c3"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(rec, &want))
	require.NoError(t, json.Unmarshal(got, &have))
	require.Len(t, have.Result.Items, len(want.Result.Items))
	assert.Equal(t, want.Result.Items[0].ContactID.String(), have.Result.C0.ID, "c0 is the linked contact")
	assert.Equal(t, want.Result.C3.ID, have.Result.C3.ID, "c3 is contact #1")
	assert.Equal(t, mustShape(t, part(t, part(t, rec, "result"), "items")), mustShape(t, part(t, part(t, got, "result"), "items")))
}
