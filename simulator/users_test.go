package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withScope starts a simulator whose app has the given scopes.
func withScope(scope ...string) func(*Options) {
	return func(o *Options) { o.App.Scope = scope }
}

// usersPortal is an installed seeded portal of an app with the scopes.
func usersPortal(t *testing.T, scope ...string) (*Portal, string) {
	t.Helper()
	p := newTestPortal(t, newTestSim(t, withScope(scope...)))
	return p, mustInstall(t, p).AccessToken
}

type userAnswer struct {
	Result []map[string]json.RawMessage `json:"result"`
	Total  *int                         `json:"total"`
	Next   *int                         `json:"next"`
}

func decodeUsers(t *testing.T, r restResp) userAnswer {
	t.Helper()
	require.Equal(t, 200, r.Status, "%s", r.Raw)
	var a userAnswer
	require.NoError(t, json.Unmarshal(r.Raw, &a), "%s", r.Raw)
	return a
}

func userIDs(t *testing.T, a userAnswer) []string {
	t.Helper()
	var ids []string
	for _, u := range a.Result {
		var id string
		require.NoError(t, json.Unmarshal(u["ID"], &id), "ID is a string")
		ids = append(ids, id)
	}
	return ids
}

// TestUserGetIsShapedAsRecorded holds user.get under user_brief to the
// recording: the same keys and JSON types, total with one page.
func TestUserGetIsShapedAsRecorded(t *testing.T) {
	f := mustRecording(t, "rest_user_get")
	p, tok := usersPortal(t, "crm", "placement", "user_brief")
	var req map[string]any
	require.NoError(t, json.Unmarshal(f.Request, &req))
	r := callJSON(t, p, "user.get", tok, req)
	assert.Equal(t, f.Status, r.Status)
	assert.Equal(t, mustShape(t, part(t, f.Body, "result")), mustShape(t, part(t, r.Raw, "result")), "source %s", f.Source)
	assert.JSONEq(t, string(part(t, f.Body, "total")), string(part(t, r.Raw, "total")))
	assert.NotContains(t, string(r.Raw), `"next"`, "one page: no next")
}

// TestUserGetFiltersAndScopes: the ids of an array filter name the users
// (the way the app asks, in a batch's query string too), the filter can
// also come as plain parameters, the answer's fields depend on the scope,
// and without a user scope the method is refused.
func TestUserGetFiltersAndScopes(t *testing.T) {
	p, tok := usersPortal(t, "crm", "placement", "user_brief")

	a := decodeUsers(t, callJSON(t, p, "user.get", tok, map[string]any{"FILTER": map[string]any{"ID": []int{3, 1, 99}}}))
	assert.Equal(t, []string{"1", "3"}, userIDs(t, a), "by ID, the unknown id left out")
	require.NotNil(t, a.Total)
	assert.Equal(t, 2, *a.Total)
	var name string
	require.NoError(t, json.Unmarshal(a.Result[1]["NAME"], &name))
	assert.Equal(t, "Carol", name)
	assert.NotContains(t, a.Result[0], "EMAIL", "user_brief gives no contact details")

	form := url.Values{"auth": {tok}, "FILTER[ID][0]": {"2"}, "FILTER[ID][1]": {"3"}, "SORT": {"ID"}, "ORDER": {"DESC"}}
	assert.Equal(t, []string{"3", "2"}, userIDs(t, decodeUsers(t, callForm(t, p, "user.get", form))), "PHP-style form, sorted")

	plain := decodeUsers(t, callJSON(t, p, "user.get", tok, map[string]any{"LAST_NAME": "Sales"}))
	assert.Equal(t, []string{"2"}, userIDs(t, plain), "the parameters themselves filter when FILTER is absent")

	none := callJSON(t, p, "user.get", tok, map[string]any{"FILTER": map[string]any{"ID": []int{99}}})
	require.Equal(t, 200, none.Status)
	assert.JSONEq(t, `[]`, string(part(t, none.Raw, "result")))
	assert.NotContains(t, string(none.Raw), `"total"`, "an empty page comes without total")

	full, ftok := usersPortal(t, "crm", "user")
	fa := decodeUsers(t, callJSON(t, full, "user.get", ftok, map[string]any{"filter": map[string]any{"ID": 1}}))
	require.Len(t, fa.Result, 1)
	assert.Contains(t, fa.Result[0], "EMAIL", "the user scope gives more")

	bare, btok := usersPortal(t, "crm", "placement")
	r := callJSON(t, bare, "user.get", btok, nil)
	assert.Equal(t, 403, r.Status)
	assert.Equal(t, "insufficient_scope", r.errCode())

	var rec []json.RawMessage
	require.NoError(t, json.Unmarshal(part(t, mustRecording(t, "rest_user_get").Body, "result"), &rec))
	cur := callJSON(t, p, "user.current", p.IssueTokens(SeedSales).AccessToken, nil)
	require.Equal(t, 200, cur.Status, "%s", cur.Raw)
	assert.Equal(t, mustShape(t, rec[0]), mustShape(t, part(t, cur.Raw, "result")), "user.current answers one user as user.get does")
}

// TestProfileTimeZone: profile says the zone a user chose by name and its
// offset now (summer and winter differ), or, for an automatic zone, ""
// and the offset the browser reported.
func TestProfileTimeZone(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	p.AddUser(User{ID: 7, Name: "Zed", TimeZone: "America/New_York"})
	type tz struct {
		Zone   string `json:"TIME_ZONE"`
		Offset int    `json:"TIME_ZONE_OFFSET"`
	}
	read := func(user int) tz {
		r := callJSON(t, p, "profile", p.IssueTokens(user).AccessToken, nil)
		require.Equal(t, 200, r.Status, "%s", r.Raw)
		var got tz
		require.NoError(t, json.Unmarshal(part(t, r.Raw, "result"), &got))
		return got
	}
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	_, off := s.Now().In(ny).Zone()
	assert.Equal(t, tz{"America/New_York", off}, read(7))
	assert.Equal(t, tz{"", 3 * 3600}, read(SeedSales), "automatic: the browser's offset")
	assert.Equal(t, tz{"", 0}, read(SeedViewer))
	berlin := read(SeedAdmin)
	assert.Equal(t, "Europe/Berlin", berlin.Zone)
	assert.Contains(t, []int{3600, 7200}, berlin.Offset)
}

// TestInstallerInTheAdminsLanguage: the installer page takes ?lang= as
// the lead and app pages do, and frames the installer with that LANG;
// without it, the portal's language.
func TestInstallerInTheAdminsLanguage(t *testing.T) {
	p := newTestPortal(t, newTestSim(t))
	for lang, want := range map[string]string{"ar": "LANG=ar", "": "LANG=en"} {
		resp, err := http.Get(p.URL() + "/marketplace/install/?user=1&lang=" + lang)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Contains(t, string(b), want, "lang %q", lang)
	}
}
