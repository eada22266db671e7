package simulator

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnvelopeAndTime(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "app.info", tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status)
	res := r.Body["result"].(map[string]any)
	for _, k := range []string{"ID", "CODE", "VERSION", "STATUS", "INSTALLED", "PAYMENT_EXPIRED", "DAYS", "LANGUAGE_ID", "LICENSE", "LICENSE_TYPE", "LICENSE_FAMILY"} {
		assert.Contains(t, res, k)
	}
	assert.Equal(t, true, res["INSTALLED"])
	assert.Equal(t, 1, num(t, res["VERSION"]))
	assert.NotContains(t, res, "member_id", "app.info does not return member_id")
	tm := r.Body["time"].(map[string]any)
	for _, k := range []string{"start", "finish", "duration", "processing", "date_start", "date_finish", "operating_reset_at", "operating"} {
		assert.Contains(t, tm, k)
	}
}

func TestParameterEncodings(t *testing.T) {
	_, p, tok := newInstalledPortal(t)

	multipartBody := func() (*bytes.Buffer, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("auth", tok.AccessToken))
		require.NoError(t, mw.WriteField("filter[@ID][]", "1"))
		require.NoError(t, mw.WriteField("filter[@ID][]", "3"))
		require.NoError(t, mw.WriteField("select[]", "NAME"))
		require.NoError(t, mw.Close())
		return &buf, mw.FormDataContentType()
	}
	tests := []struct {
		name string
		do   func() (*http.Response, error)
	}{
		{"query string", func() (*http.Response, error) {
			return testClient.Get(p.RESTEndpoint() + "crm.contact.list.json?auth=" + tok.AccessToken + "&filter%5B%40ID%5D%5B%5D=1&filter%5B%40ID%5D%5B%5D=3&select%5B%5D=NAME")
		}},
		{"form", func() (*http.Response, error) {
			return testClient.PostForm(p.RESTEndpoint()+"crm.contact.list", url.Values{"auth": {tok.AccessToken}, "filter[@ID][]": {"1", "3"}, "select[]": {"NAME"}})
		}},
		{"form with auth in query", func() (*http.Response, error) {
			return testClient.PostForm(p.RESTEndpoint()+"crm.contact.list?auth="+tok.AccessToken, url.Values{"filter[@ID][0]": {"1"}, "filter[@ID][1]": {"3"}, "select[0]": {"NAME"}})
		}},
		{"json", func() (*http.Response, error) {
			return testClient.Post(p.RESTEndpoint()+"crm.contact.list", "application/json",
				bytes.NewReader([]byte(`{"filter":{"@ID":[1,3]},"select":["NAME"],"auth":"`+tok.AccessToken+`"}`)))
		}},
		{"multipart", func() (*http.Response, error) {
			body, ct := multipartBody()
			return testClient.Post(p.RESTEndpoint()+"crm.contact.list", ct, body)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.do()
			require.NoError(t, err)
			r := decodeResp(t, resp)
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
			rows := r.Body["result"].([]any)
			require.Len(t, rows, 2)
			assert.Equal(t, map[string]any{"ID": "1", "NAME": "Jürgen"}, rows[0])
			assert.Equal(t, map[string]any{"ID": "3", "NAME": "Siobhán"}, rows[1])
			assert.Equal(t, 2, num(t, r.Body["total"]))
			assert.NotContains(t, r.Body, "next")
		})
	}
	// Tokens never end up in call records.
	for _, c := range p.Calls() {
		assert.Empty(t, c.Params.Get("auth"))
		assert.Len(t, c.TokenPrefix, 4)
	}
}

func TestSystemErrors(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	tests := []struct {
		name, method, token string
		status              int
		code, desc          string
	}{
		{"no auth", "profile", "", 401, "NO_AUTH_FOUND", "Wrong authorization data"},
		{"unknown token", "profile", "0123456789abcdef", 401, "invalid_token", "Unable to get application by token"},
		{"unknown method", "crm.lead.fly", tok.AccessToken, 404, "ERROR_METHOD_NOT_FOUND", "Method not found!"},
		{"missing scope", "user.current", tok.AccessToken, 403, "insufficient_scope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := callJSON(t, p, tt.method, tt.token, nil)
			assert.Equal(t, tt.status, r.Status)
			assert.Equal(t, tt.code, r.errCode())
			if tt.desc != "" {
				assert.Equal(t, tt.desc, r.errDesc())
			}
		})
	}
}

func TestCRMErrors(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	admin := p.IssueTokens(SeedAdmin).AccessToken
	viewer := p.IssueTokens(SeedViewer).AccessToken
	p.AddUser(User{ID: 9, Name: "No", LastName: "Rights"})
	nobody := p.IssueTokens(9).AccessToken
	tests := []struct {
		name   string
		method string
		token  string
		params map[string]any
		status int
		code   string
		desc   string
	}{
		{"lead.get ok with ID", "crm.lead.get", viewer, map[string]any{"ID": 1}, 200, "", ""},
		{"lead.get no id", "crm.lead.get", admin, nil, 400, "", "ID is not defined or invalid"},
		{"lead.get bad id", "crm.lead.get", admin, map[string]any{"id": "abc"}, 400, "", "ID is not defined or invalid"},
		{"lead.get missing", "crm.lead.get", admin, map[string]any{"id": 999}, 400, "", "Not found"},
		{"lead.get no rights", "crm.lead.get", nobody, map[string]any{"id": 1}, 403, "", "Access denied"},
		{"contact.get missing", "crm.contact.get", admin, map[string]any{"id": 999}, 400, "", "Not found"},
		{"contact.get no rights", "crm.contact.get", nobody, map[string]any{"id": 1}, 403, "", "Access denied"},
		{"items.delete no id", "crm.lead.contact.items.delete", admin, nil, 400, "", ""},
		{"items.delete uppercase ID is not id", "crm.lead.contact.items.delete", admin, map[string]any{"ID": 1}, 400, "", ""},
		{"items.delete missing lead", "crm.lead.contact.items.delete", admin, map[string]any{"id": 999}, 400, "NOT_FOUND", "Not found."},
		{"items.delete read-only user", "crm.lead.contact.items.delete", viewer, map[string]any{"id": 1}, 403, "ACCESS_DENIED", ""},
		{"items.get no rights", "crm.lead.contact.items.get", nobody, map[string]any{"id": 1}, 403, "ACCESS_DENIED", ""},
		{"items.get read-only ok", "crm.lead.contact.items.get", viewer, map[string]any{"id": 1}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := callJSON(t, p, tt.method, tt.token, tt.params)
			assert.Equal(t, tt.status, r.Status, "%s", r.Raw)
			if tt.status != 200 {
				require.Contains(t, r.Body, "error", "error key must be present even when empty")
				assert.Equal(t, tt.code, r.errCode())
				if tt.desc != "" {
					assert.Equal(t, tt.desc, r.errDesc())
				}
			}
		})
	}
	// Nothing was deleted by the refused calls.
	assert.Len(t, p.LeadContacts(SeedLeadThreeContacts), 3)
}

func TestLeadContactItems(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	tok := p.IssueTokens(SeedSales).AccessToken

	r := callJSON(t, p, "crm.lead.contact.items.get", tok, map[string]any{"id": SeedLeadThreeContacts})
	require.Equal(t, http.StatusOK, r.Status)
	items := r.Body["result"].([]any)
	require.Len(t, items, 3)
	first := items[0].(map[string]any)
	assert.Equal(t, 1, num(t, first["CONTACT_ID"]), "numbers as JSON numbers")
	assert.Equal(t, 10, num(t, first["SORT"]))
	assert.Equal(t, 0, num(t, first["ROLE_ID"]))
	assert.Equal(t, "N", first["IS_PRIMARY"])
	assert.Equal(t, "Y", items[1].(map[string]any)["IS_PRIMARY"])

	r = callJSON(t, p, "crm.lead.get", tok, map[string]any{"id": SeedLeadThreeContacts})
	require.Equal(t, http.StatusOK, r.Status)
	lead := r.Body["result"].(map[string]any)
	assert.Equal(t, "1", lead["ID"], "IDs as strings")
	assert.Equal(t, "2", lead["CONTACT_ID"], "primary contact mirrored")
	assert.Equal(t, "2", lead["ASSIGNED_BY_ID"])

	r = callJSON(t, p, "crm.lead.contact.items.delete", tok, map[string]any{"id": SeedLeadThreeContacts})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, true, r.Body["result"])
	assert.Empty(t, p.LeadContacts(SeedLeadThreeContacts))
	r = callJSON(t, p, "crm.lead.get", tok, map[string]any{"id": SeedLeadThreeContacts})
	assert.Nil(t, r.Body["result"].(map[string]any)["CONTACT_ID"])
	assert.Equal(t, []any{}, callJSON(t, p, "crm.lead.contact.items.get", tok, map[string]any{"id": SeedLeadThreeContacts}).Body["result"])

	// Deleting again (no contacts) still answers true.
	r = callJSON(t, p, "crm.lead.contact.items.delete", tok, map[string]any{"id": SeedLeadThreeContacts})
	assert.Equal(t, true, r.Body["result"])

	// items.set replaces the list; one primary is kept.
	r = callJSON(t, p, "crm.lead.contact.items.set", tok, map[string]any{"id": SeedLeadNoContacts, "items": []map[string]any{
		{"CONTACT_ID": 4, "SORT": 20}, {"CONTACT_ID": 5, "SORT": 10, "IS_PRIMARY": "Y"},
	}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, []LeadContact{{ContactID: 5, Sort: 10, Primary: true}, {ContactID: 4, Sort: 20}}, p.LeadContacts(SeedLeadNoContacts))

	// add and delete single links (form-encoded, as CRest sends).
	r = callForm(t, p, "crm.lead.contact.add", url.Values{"auth": {tok}, "id": {"3"}, "fields[CONTACT_ID]": {"6"}, "fields[IS_PRIMARY]": {"Y"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, 6, primaryOf(p.LeadContacts(SeedLeadNoContacts)))
	r = callForm(t, p, "crm.lead.contact.delete", url.Values{"auth": {tok}, "id": {"3"}, "fields[CONTACT_ID]": {"6"}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, 5, primaryOf(p.LeadContacts(SeedLeadNoContacts)), "first by sort becomes primary")

	r = callJSON(t, p, "crm.lead.contact.fields", tok, nil)
	assert.Contains(t, r.Body["result"], "CONTACT_ID")
}

func primaryOf(links []LeadContact) int {
	for _, l := range links {
		if l.Primary {
			return l.ContactID
		}
	}
	return 0
}

func TestContactListPaging(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	for i := 100; i < 160; i++ {
		p.AddContact(Contact{ID: i, Name: "Bulk", LastName: "Contact"})
	}
	r := callJSON(t, p, "crm.contact.list", tok.AccessToken, map[string]any{"filter": map[string]any{"NAME": "Bulk"}, "order": map[string]any{"ID": "DESC"}})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Len(t, r.Body["result"], 50)
	assert.Equal(t, 60, num(t, r.Body["total"]))
	assert.Equal(t, 50, num(t, r.Body["next"]))
	assert.Equal(t, "159", r.Body["result"].([]any)[0].(map[string]any)["ID"])
	r = callJSON(t, p, "crm.contact.list", tok.AccessToken, map[string]any{"filter": map[string]any{"NAME": "Bulk"}, "start": 50})
	assert.Len(t, r.Body["result"], 10)
	assert.NotContains(t, r.Body, "next")
}

func TestCallsAreRecorded(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	callJSON(t, p, "crm.lead.contact.items.delete", tok.AccessToken, map[string]any{"id": 2})
	callJSON(t, p, "crm.lead.contact.items.delete", "", map[string]any{"id": 2})
	calls := p.CallsTo("CRM.LEAD.CONTACT.ITEMS.DELETE")
	require.Len(t, calls, 2)
	assert.Equal(t, SeedAdmin, calls[0].UserID)
	assert.Equal(t, tok.AccessToken[:4], calls[0].TokenPrefix)
	assert.Equal(t, "2", calls[0].Params.Get("id"))
	assert.Equal(t, 200, calls[0].HTTPStatus)
	assert.Equal(t, 401, calls[1].HTTPStatus)
	assert.Equal(t, "NO_AUTH_FOUND", calls[1].Error)
	assert.False(t, calls[0].Time.IsZero())
}
