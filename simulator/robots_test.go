package simulator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// robotApp is a portal whose app has the bizproc scope and lives at app's
// host (robot handlers must be on the app's domain), installed by the
// seeded admin.
type robotApp struct {
	s     *Simulator
	p     *Portal
	admin string // the admin's access token
	base  string // the app's base URL
	mu    sync.Mutex
	posts []url.Values // what the robot handler received
	reply func(form url.Values) int
}

func newRobotApp(t *testing.T) *robotApp {
	t.Helper()
	ra := &robotApp{reply: func(url.Values) int { return http.StatusOK }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ra.mu.Lock()
		ra.posts = append(ra.posts, r.PostForm)
		reply := ra.reply
		ra.mu.Unlock()
		w.WriteHeader(reply(r.PostForm))
	}))
	t.Cleanup(srv.Close)
	ra.base = srv.URL
	ra.s = newTestSim(t, func(o *Options) {
		o.App.Scope = []string{"crm", "placement", "bizproc"}
		o.App.InstallURL = srv.URL + "/install"
	})
	ra.p = newTestPortal(t, ra.s)
	ra.admin = mustInstall(t, ra.p).AccessToken
	return ra
}

func (ra *robotApp) received() []url.Values {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return append([]url.Values(nil), ra.posts...)
}

// robotFields is a valid bizproc.robot.add call, as the docs' example.
func (ra *robotApp) robotFields(code string) map[string]any {
	return map[string]any{"CODE": code, "HANDLER": ra.base + "/robot", "AUTH_USER_ID": SeedAdmin,
		"NAME": map[string]any{"en": "Unlink contacts", "de": "Kontakte lösen"}, "USE_SUBSCRIPTION": "Y",
		"PROPERTIES":        map[string]any{"mode": map[string]any{"Name": "Mode", "Type": "select", "Default": "all", "Options": map[string]any{"all": "All"}}},
		"RETURN_PROPERTIES": map[string]any{"removed": map[string]any{"Name": map[string]any{"en": "Unlinked"}, "Type": "int"}},
		"DOCUMENT_TYPE":     []string{"crm", "CCrmDocumentLead", "LEAD"},
		"FILTER":            map[string]any{"INCLUDE": []any{[]string{"crm", "CCrmDocumentLead"}}}}
}

func (ra *robotApp) mustAddRobot(t *testing.T, code string) {
	t.Helper()
	r := callJSON(t, ra.p, "bizproc.robot.add", ra.admin, ra.robotFields(code))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	require.Equal(t, true, r.Body["result"])
}

func TestRobotRegistration(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "cleanup_contacts")
	ra.mustAddRobot(t, "second.robot-2")
	r := callJSON(t, ra.p, "bizproc.robot.list", ra.admin, nil)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, []any{"cleanup_contacts", "second.robot-2"}, r.Body["result"])
	robots := ra.p.Robots()
	require.Len(t, robots, 2)
	assert.Equal(t, map[string]string{"en": "Unlink contacts", "de": "Kontakte lösen"}, robots[0].Name)
	assert.Equal(t, []string{"mode"}, robots[0].Properties)
	assert.Equal(t, "all", robots[0].PropertyDefaults["mode"])
	assert.Equal(t, []string{"removed"}, robots[0].ReturnProperties)

	r = callJSON(t, ra.p, "bizproc.robot.update", ra.admin, map[string]any{"CODE": "cleanup_contacts",
		"FIELDS": map[string]any{"NAME": "Plain name", "USE_SUBSCRIPTION": "N", "AUTH_USER_ID": SeedSales}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	robots = ra.p.Robots()
	assert.Equal(t, map[string]string{"": "Plain name"}, robots[0].Name)
	assert.Equal(t, SeedSales, robots[0].AuthUserID)
	assert.False(t, robots[0].waits())

	r = callJSON(t, ra.p, "bizproc.robot.delete", ra.admin, map[string]any{"CODE": "second.robot-2"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	r = callJSON(t, ra.p, "bizproc.robot.list", ra.admin, nil)
	assert.Equal(t, []any{"cleanup_contacts"}, r.Body["result"])

	// An update of the app drops its robots (bizproc-robot-delete.md).
	_, err := ra.p.Install(SeedAdmin)
	require.NoError(t, err)
	assert.Empty(t, ra.p.Robots())
}

// TestRobotErrors holds each method to the error table of its docs page
// and the bizproc REST service's source.
func TestRobotErrors(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "taken")
	with := func(mut func(m map[string]any)) map[string]any {
		m := ra.robotFields("fresh")
		mut(m)
		return m
	}
	sales := ra.p.IssueTokens(SeedSales).AccessToken
	tests := []struct {
		name, method, token string
		params              map[string]any
		status              int
		code, desc          string
	}{
		{"add by a non-admin", "bizproc.robot.add", sales, ra.robotFields("x"), 403, "ACCESS_DENIED", "Access denied!"},
		{"list by a non-admin", "bizproc.robot.list", sales, nil, 403, "ACCESS_DENIED", "Access denied!"},
		{"empty data", "bizproc.robot.add", "", nil, 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty data!"},
		{"no code", "bizproc.robot.add", "", with(func(m map[string]any) { delete(m, "CODE") }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity code!"},
		{"wrong code", "bizproc.robot.add", "", with(func(m map[string]any) { m["CODE"] = "no spaces" }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity code!"},
		{"no handler", "bizproc.robot.add", "", with(func(m map[string]any) { delete(m, "HANDLER") }), 400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL"},
		{"ftp handler", "bizproc.robot.add", "", with(func(m map[string]any) { m["HANDLER"] = "ftp://app.example.com/r" }), 400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol"},
		{"handler elsewhere", "bizproc.robot.add", "", with(func(m map[string]any) { m["HANDLER"] = "https://evil.example.org/r" }), 400, "ERROR_HANDLER_URL_MATCH", "Handler URL host doesn't match application url"},
		{"no name", "bizproc.robot.add", "", with(func(m map[string]any) { m["NAME"] = map[string]any{} }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity NAME!"},
		{"properties not an array", "bizproc.robot.add", "", with(func(m map[string]any) { m["PROPERTIES"] = "x" }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong properties array!"},
		{"property key", "bizproc.robot.add", "", with(func(m map[string]any) { m["PROPERTIES"] = map[string]any{"1st": map[string]any{"Name": "x"}} }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong property key (1st)!"},
		{"property name", "bizproc.robot.add", "", with(func(m map[string]any) { m["RETURN_PROPERTIES"] = map[string]any{"out": map[string]any{"Type": "int"}} }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty property NAME (out)!"},
		{"document type", "bizproc.robot.add", "", with(func(m map[string]any) { m["DOCUMENT_TYPE"] = []string{"crm"} }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity DOCUMENT_TYPE!"},
		{"filter", "bizproc.robot.add", "", with(func(m map[string]any) { m["FILTER"] = "box" }), 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity FILTER!"},
		{"placement without handler", "bizproc.robot.add", "", with(func(m map[string]any) { m["USE_PLACEMENT"] = "Y" }), 400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL"},
		{"duplicate", "bizproc.robot.add", "", with(func(m map[string]any) { m["CODE"] = "taken" }), 400, "ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!"},
		{"update unknown", "bizproc.robot.update", "", map[string]any{"CODE": "nope", "FIELDS": map[string]any{"NAME": "x"}}, 400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!"},
		{"update without fields", "bizproc.robot.update", "", map[string]any{"CODE": "taken"}, 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "No fields to update"},
		{"update bad handler", "bizproc.robot.update", "", map[string]any{"CODE": "taken", "FIELDS": map[string]any{"HANDLER": "https://evil.example.org/r"}}, 400, "ERROR_HANDLER_URL_MATCH", "Handler URL host doesn't match application url"},
		{"delete without code", "bizproc.robot.delete", "", nil, 400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity code!"},
		{"delete unknown", "bizproc.robot.delete", "", map[string]any{"CODE": "nope"}, 400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := callJSON(t, ra.p, tc.method, cmpOrString(tc.token, ra.admin), tc.params)
			assert.Equal(t, tc.status, r.Status, "%s", r.Raw)
			assert.Equal(t, tc.code, r.errCode())
			assert.Equal(t, tc.desc, r.errDesc())
		})
	}
	assert.Len(t, ra.p.Robots(), 1, "no failed call registered anything")

	// Without the bizproc scope the methods are out of reach.
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "bizproc.robot.list", tok.AccessToken, nil)
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "insufficient_scope", r.errCode())
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
