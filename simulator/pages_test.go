package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// browser is an HTTP client with cookies, like a user's browser.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: testClient.Timeout}
}

// newBrowserTest returns a seeded portal of a new simulator and a browser
// with an empty cookie jar to visit it.
func newBrowserTest(t *testing.T) (*Portal, *http.Client) {
	t.Helper()
	return newTestPortal(t, newTestSim(t)), browser(t)
}

func getPage(t *testing.T, c *http.Client, u string) (*goquery.Document, *http.Response) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	doc, err := goquery.NewDocumentFromReader(resp.Body)
	require.NoError(t, err)
	return doc, resp
}

func texts(sel *goquery.Selection) []string {
	out := []string{}
	sel.Each(func(_ int, s *goquery.Selection) { out = append(out, strings.TrimSpace(s.Text())) })
	return out
}

// assertNoInlineScript checks the CSP-friendliness of a page.
func assertNoInlineScript(t *testing.T, doc *goquery.Document, resp *http.Response) {
	t.Helper()
	doc.Find("script").Each(func(_ int, s *goquery.Selection) {
		_, hasSrc := s.Attr("src")
		typ, _ := s.Attr("type")
		assert.True(t, hasSrc || typ == "application/json", "inline script: %s", s.Text())
	})
	doc.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, a := range s.Nodes[0].Attr {
			assert.False(t, strings.HasPrefix(a.Key, "on"), "inline handler %s", a.Key)
		}
	})
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
}

func TestHomePage(t *testing.T) {
	p, c := newBrowserTest(t)
	doc, resp := getPage(t, c, p.URL()+"/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertNoInlineScript(t, doc, resp)
	assert.Equal(t, "none", doc.Find("#install-state").AttrOr("data-state", ""))
	assert.Equal(t, "/marketplace/install/", doc.Find("#install-app").AttrOr("href", ""))
	assert.Zero(t, doc.Find("#uninstall-form").Length())
	assert.Len(t, texts(doc.Find("#lead-list li a")), 4)
	assert.Equal(t, "1", doc.Find("#current-user").AttrOr("data-user-id", ""))

	// ?user= switches and is remembered.
	doc, _ = getPage(t, c, p.URL()+"/?user=2")
	assert.Equal(t, "Bob Sales", doc.Find("#current-user").Text())
	doc, _ = getPage(t, c, p.URL()+"/")
	assert.Equal(t, "2", doc.Find("#current-user").AttrOr("data-user-id", ""))

	mustInstall(t, p)
	doc, _ = getPage(t, c, p.URL()+"/")
	assert.Equal(t, "installed", doc.Find("#install-state").AttrOr("data-state", ""))
	assert.Equal(t, 1, doc.Find("#uninstall-form").Length())
	assert.Zero(t, doc.Find("#install-app").Length())
}

func TestLeadCardContactsAndTabs(t *testing.T) {
	p, c := newBrowserTest(t)

	doc, resp := getPage(t, c, p.URL()+"/crm/lead/details/1/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertNoInlineScript(t, doc, resp)
	assert.Equal(t, []string{"Jürgen Groß", "Анна Смирнова", "Siobhán O'Connor"}, texts(doc.Find("#portal-contacts li")))
	assert.Equal(t, "2", doc.Find("#portal-contacts li.primary").AttrOr("data-contact-id", ""))
	assert.Equal(t, []string{"General"}, texts(doc.Find("#lead-tabs .tab")), "no app tab before install")

	doc, _ = getPage(t, c, p.URL()+"/crm/lead/details/3/")
	assert.Zero(t, doc.Find("#portal-contacts li").Length())
	_, hidden := doc.Find("#portal-contacts-empty").Attr("hidden")
	assert.False(t, hidden)

	// HTML in data is escaped.
	doc, resp = getPage(t, c, p.URL()+"/crm/lead/details/4/")
	assertNoInlineScript(t, doc, resp)
	assert.Equal(t, "Big conference <deal> & partners", doc.Find("#lead-title").Text())
	assert.Contains(t, texts(doc.Find("#portal-contacts li")), `Max "<b>Bold</b>" Mustermann & Co`)
	assert.Zero(t, doc.Find("#portal-contacts b").Length())

	tok := mustInstall(t, p)
	bind := map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab", "TITLE": "Remove contacts",
		"LANG_ALL": map[string]any{"de": map[string]any{"TITLE": "Kontakte entfernen"}}}
	require.Equal(t, 200, callJSON(t, p, "placement.bind", tok.AccessToken, bind).Status)

	doc, _ = getPage(t, c, p.URL()+"/crm/lead/details/1/")
	assert.Equal(t, []string{"General", "Remove contacts"}, texts(doc.Find("#lead-tabs .tab")))
	doc, _ = getPage(t, c, p.URL()+"/crm/lead/details/1/?lang=de")
	assert.Equal(t, "Kontakte entfernen", strings.TrimSpace(doc.Find(`#lead-tabs .tab[data-tab="app"]`).Text()))

	doc, _ = getPage(t, c, p.URL()+"/crm/lead/details/1/?tab=app&user=2")
	assert.Equal(t, "true", doc.Find(`#lead-tabs .tab[data-tab="app"]`).AttrOr("aria-selected", ""))
	frame := doc.Find("iframe#app-frame")
	require.Equal(t, 1, frame.Length())
	name := frame.AttrOr("name", "")
	parts := strings.Split(name, "|")
	require.Len(t, parts, 3)
	assert.Equal(t, p.Domain(), parts[0])
	assert.Equal(t, "0", parts[1])
	form := doc.Find("form#frame-form")
	assert.Equal(t, name, form.AttrOr("target", ""))
	assert.Equal(t, "post", form.AttrOr("method", ""))
	action, err := url.Parse(form.AttrOr("action", ""))
	require.NoError(t, err)
	assert.Equal(t, "app.example.com", action.Host)
	assert.Equal(t, parts[2], action.Query().Get("APP_SID"))
	fields := map[string]string{}
	form.Find("input").Each(func(_ int, s *goquery.Selection) { fields[s.AttrOr("name", "")] = s.AttrOr("value", "") })
	assert.Equal(t, "CRM_LEAD_DETAIL_TAB", fields["PLACEMENT"])
	var opts map[string]string
	require.NoError(t, json.Unmarshal([]byte(fields["PLACEMENT_OPTIONS"]), &opts))
	assert.Equal(t, "1", opts["ID"])
	assert.Equal(t, "/crm/lead/details/1/", opts["URI"])
	r := callJSON(t, p, "profile", fields["AUTH_ID"], nil)
	assert.Equal(t, "2", r.Body["result"].(map[string]any)["ID"], "frame tokens are the current user's")

	var data map[string]any
	require.NoError(t, json.Unmarshal([]byte(doc.Find("#frame-data").Text()), &data))
	assert.Equal(t, parts[2], data["sid"])
	assert.Equal(t, "https://app.example.com", data["handlerOrigin"])
	assert.Equal(t, "placement", data["kind"])
	assert.Equal(t, fields["AUTH_ID"], data["auth"].(map[string]any)["access_token"])

	// Access rules of the card.
	p.AddUser(User{ID: 8, Name: "No", LastName: "Rights"})
	_, resp = getPage(t, c, p.URL()+"/crm/lead/details/1/?user=8")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	_, resp = getPage(t, c, p.URL()+"/crm/lead/details/99/")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestInstallerPageAndFinish(t *testing.T) {
	p, c := newBrowserTest(t)

	doc, resp := getPage(t, c, p.URL()+"/marketplace/install/?user=2")
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Contains(t, doc.Find("#message-text").Text(), "administrator")

	doc, resp = getPage(t, c, p.URL()+"/marketplace/install/?user=1")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertNoInlineScript(t, doc, resp)
	assert.True(t, p.InstallStarted())
	assert.False(t, p.Installed())
	sid := strings.Split(doc.Find("iframe#app-frame").AttrOr("name", ""), "|")[2]
	action := doc.Find("form#frame-form").AttrOr("action", "")
	assert.True(t, strings.HasPrefix(action, "https://app.example.com/install?"), action)
	fields := map[string]string{}
	doc.Find("form#frame-form input").Each(func(_ int, s *goquery.Selection) { fields[s.AttrOr("name", "")] = s.AttrOr("value", "") })
	assert.Equal(t, "DEFAULT", fields["PLACEMENT"])

	post := func(sid string, origin string) int {
		req, err := http.NewRequest(http.MethodPost, p.URL()+"/sim/api/install-finish", strings.NewReader(url.Values{"app_sid": {sid}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, post("wrong", ""))
	assert.Equal(t, http.StatusForbidden, post(sid, "https://evil.example"), "cross-origin POST refused")
	assert.False(t, p.Installed())
	assert.Equal(t, http.StatusOK, post(sid, ""))
	assert.True(t, p.Installed())
}

func TestFrameAuthAndContactsAPI(t *testing.T) {
	p, c := newBrowserTest(t)
	f, err := p.BeginInstall(SeedAdmin)
	require.NoError(t, err)
	resp, err := c.PostForm(p.URL()+"/sim/api/auth", url.Values{"app_sid": {f.Query.Get("APP_SID")}})
	require.NoError(t, err)
	r := decodeResp(t, resp)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, 200, callJSON(t, p, "profile", r.Body["access_token"].(string), nil).Status)
	assert.Equal(t, 3600, num(t, r.Body["expires_in"]))

	resp, err = c.Get(p.URL() + "/sim/api/lead/1/contacts")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var rows []contactRow
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rows))
	assert.Equal(t, []contactRow{{1, "Jürgen Groß", false}, {2, "Анна Смирнова", true}, {3, "Siobhán O'Connor", false}}, rows)
}

func TestContactPageAndUninstallForm(t *testing.T) {
	p, c := newBrowserTest(t)
	doc, resp := getPage(t, c, p.URL()+"/crm/contact/details/2/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, doc.Find("#contact-name").Text(), "Смирнова")

	tok := mustInstall(t, p)
	sink := newEventSink(t, http.StatusOK)
	require.Equal(t, 200, callJSON(t, p, "event.bind", tok.AccessToken, map[string]any{"event": "ONAPPUNINSTALL", "handler": sink.srv.URL}).Status)
	resp, err := c.PostForm(p.URL()+"/sim/uninstall", url.Values{"clean": {"1"}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.False(t, p.Installed())
	require.Len(t, sink.got(), 1)
	assert.Equal(t, "1", sink.got()[0].Get("data[CLEAN]"))
}

func TestStaticAssetsAndShim(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	tests := []struct {
		url, contentType, contains string
	}{
		{s.JSURL(), "application/javascript; charset=utf-8", "window.name"},
		{p.URL() + "/sim/static/portal.js", "application/javascript; charset=utf-8", "handlerOrigin"},
		{p.URL() + "/sim/static/style.css", "text/css; charset=utf-8", "#2fc6f6"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			resp, err := testClient.Get(tt.url)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tt.contentType, resp.Header.Get("Content-Type"))
			assert.Contains(t, string(body), tt.contains)
			assert.NotContains(t, string(body), "eval(")
		})
	}
	resp, err := testClient.Get(p.URL() + "/sim/static/../simulator.go")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestOpenAppFramesTheApplicationURL(t *testing.T) {
	s := newTestSim(t, func(o *Options) {
		o.App.AppURL = "https://app.example.com/app"
		o.App.Name = "Contacts cleanup"
	})
	p := newTestPortal(t, s)
	_, err := p.OpenApp(SeedAdmin, "de")
	require.Error(t, err, "no app before the install")

	mustInstall(t, p)
	f, err := p.OpenApp(SeedSales, "de")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(f.URL, "https://app.example.com/app?"))
	assert.Equal(t, "de", f.Query.Get("LANG"))
	assert.Equal(t, "DEFAULT", f.Form.Get("PLACEMENT"))
	assert.NotContains(t, f.Form, "PLACEMENT_OPTIONS", "sent only when there are options")
	assert.NotEmpty(t, f.Form.Get("AUTH_ID"))
	assert.Equal(t, p.ApplicationToken(), f.Form.Get("APPLICATION_TOKEN"))

	// The portal's pages list the app in the left menu and frame it.
	get := func(path string) string {
		resp, err := http.Get(p.URL() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	assert.Contains(t, get("/"), `id="menu-app"`)
	page := get("/marketplace/app/?user=2&lang=ru")
	assert.Contains(t, page, `action="https://app.example.com/app?`)
	assert.Contains(t, page, `name="PLACEMENT" value="DEFAULT"`)
	assert.Contains(t, page, `id="slider"`, "history links open in the slider")
}

func TestNoAppMenuWithoutApplicationURL(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	mustInstall(t, p)
	resp, err := http.Get(p.URL() + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.NotContains(t, string(b), `id="menu-app"`)
	_, err = p.OpenApp(SeedAdmin, "")
	assert.Error(t, err)
}
