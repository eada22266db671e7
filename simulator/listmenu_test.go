package simulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func bindListMenu(t *testing.T, p *Portal, token string, extra map[string]any) {
	t.Helper()
	params := map[string]any{"PLACEMENT": "CRM_LEAD_LIST_MENU", "HANDLER": "https://app.example.com/list-menu", "TITLE": "Unlink contacts",
		"LANG_ALL": map[string]any{"de": map[string]any{"TITLE": "Kontakte lösen"}}}
	for k, v := range extra {
		params[k] = v
	}
	r := callJSON(t, p, "placement.bind", token, params)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
}

func TestLeadListMenuFrameIsAsRecorded(t *testing.T) {
	s := newTestSim(t)
	p := newTestPortal(t, s)
	tok := mustInstall(t, p)
	_, err := p.OpenLeadListMenu(SeedSales, SeedLeadThreeContacts, "en")
	require.Error(t, err, "nothing bound yet")
	bindListMenu(t, p, tok.AccessToken, map[string]any{"OPTIONS": map[string]any{"x": "y"}})

	f, err := p.OpenLeadListMenu(SeedSales, SeedLeadThreeContacts, "de")
	require.NoError(t, err)
	rec := mustRecording(t, "frame_lead_list_menu")
	sameFields(t, rec, f.Query, f.Form)
	sameOptions(t, rec, f, SeedLeadThreeContacts)
	assert.Equal(t, "CRM_LEAD_LIST_MENU", f.Form.Get("PLACEMENT"))
	assert.Equal(t, `{"ID":"1","URI":"\/crm\/lead\/list\/"}`, f.Form.Get("PLACEMENT_OPTIONS"))
	assert.Equal(t, "de", f.Query.Get("LANG"))
	assert.True(t, strings.HasPrefix(f.URL, "https://app.example.com/list-menu?"), f.URL)
	// The frame's token is the user's.
	r := callJSON(t, p, "profile", f.Form.Get("AUTH_ID"), nil)
	assert.Equal(t, strconv.Itoa(SeedSales), r.Body["result"].(map[string]any)["ID"])

	// list-menu.md: the placement keeps no OPTIONS.
	r = callJSON(t, p, "placement.get", tok.AccessToken, nil)
	require.Equal(t, http.StatusOK, r.Status)
	got := r.Body["result"].([]any)[0].(map[string]any)
	assert.Equal(t, []any{}, got["options"])

	p.AddUser(User{ID: 9, Name: "No", LastName: "Rights"})
	_, err = p.OpenLeadListMenu(9, SeedLeadThreeContacts, "en")
	assert.Error(t, err)
	_, err = p.OpenLeadListMenu(SeedSales, 99999, "en")
	assert.Error(t, err)

	old, err := s.AddPortal(PortalOptions{Seed: true, Legacy: true})
	require.NoError(t, err)
	otok := mustInstall(t, old)
	bindListMenu(t, old, otok.AccessToken, nil)
	f, err = old.OpenLeadListMenu(SeedSales, SeedLeadOneContact, "en")
	require.NoError(t, err)
	assert.Equal(t, `{"ID":"2"}`, f.Form.Get("PLACEMENT_OPTIONS"), "older servers send the ID alone")
}

func TestLeadListPage(t *testing.T) {
	p, c := newBrowserTest(t)
	p.SeedLeads(BulkOptions{Leads: 120, Seed: 3})
	doc, resp := getPage(t, c, p.URL()+"/crm/lead/list/?user=2")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertNoInlineScript(t, doc, resp)
	assert.Equal(t, "124", doc.Find("#lead-total").AttrOr("data-total", ""))
	assert.Equal(t, 50, doc.Find("#lead-table tbody tr").Length())
	assert.Zero(t, doc.Find(".row-menu").Length(), "no menu item before an app binds one")

	// Filters and pages.
	doc, _ = getPage(t, c, p.URL()+"/crm/lead/list/?status=JUNK&assigned=2")
	total, _ := strconv.Atoi(doc.Find("#lead-total").AttrOr("data-total", ""))
	require.Positive(t, total)
	doc.Find("#lead-table tbody tr").Each(func(_ int, row *goquery.Selection) {
		assert.Equal(t, "JUNK", strings.TrimSpace(row.Find("td").Eq(3).Text()))
		assert.Equal(t, "Bob Sales", strings.TrimSpace(row.Find("td").Eq(5).Text()))
	})
	doc, _ = getPage(t, c, p.URL()+"/crm/lead/list/?page=3")
	assert.Equal(t, 24, doc.Find("#lead-table tbody tr").Length())
	assert.Zero(t, doc.Find("#page-next").Length())
	href, _ := doc.Find("#page-prev").Attr("href")
	assert.Equal(t, "/crm/lead/list/?page=2", href)

	tok := mustInstall(t, p)
	bindListMenu(t, p, tok.AccessToken, nil)
	doc, _ = getPage(t, c, p.URL()+"/crm/lead/list/?status=NEW&lang=de")
	first := doc.Find("#lead-table tbody tr").First()
	leadID := first.AttrOr("data-lead-id", "")
	item := first.Find(".row-menu a.menu-app")
	require.Equal(t, 1, item.Length())
	assert.Equal(t, "Kontakte lösen", item.Text())

	// The item opens the app in the slider, POSTed like any frame.
	link, _ := item.Attr("href")
	doc, resp = getPage(t, c, p.URL()+link)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assertNoInlineScript(t, doc, resp)
	require.Equal(t, 1, doc.Find("#list-slider #app-frame").Length())
	form := doc.Find("#list-slider #frame-form")
	action, _ := form.Attr("action")
	u, err := url.Parse(action)
	require.NoError(t, err)
	assert.Equal(t, "app.example.com", u.Host)
	assert.Equal(t, "de", u.Query().Get("LANG"))
	fields := map[string]string{}
	form.Find("input").Each(func(_ int, in *goquery.Selection) { fields[in.AttrOr("name", "")] = in.AttrOr("value", "") })
	assert.Equal(t, "CRM_LEAD_LIST_MENU", fields["PLACEMENT"])
	var opts map[string]string
	require.NoError(t, json.Unmarshal([]byte(fields["PLACEMENT_OPTIONS"]), &opts))
	assert.Equal(t, map[string]string{"ID": leadID, "URI": "/crm/lead/list/"}, opts)
	closeHref, _ := doc.Find("#list-slider-close").Attr("href")
	assert.Equal(t, "/crm/lead/list/?page=1&status=NEW", closeHref)
}

func TestLeadCardRobotControls(t *testing.T) {
	ra := newRobotApp(t)
	ra.mustAddRobot(t, "cleanup_contacts")
	c := browser(t)
	doc, _ := getPage(t, c, ra.p.URL()+"/crm/lead/details/2/?user=1")
	assert.Equal(t, 1, doc.Find("#robot-log-empty").Length())
	require.Equal(t, 1, doc.Find("#automation-form").Length(), "admins see the designer control")

	resp, err := c.PostForm(ra.p.URL()+"/sim/automation", url.Values{"code": {"cleanup_contacts"}, "stage": {"PROCESSED"}, "run_as": {"2"}, "lead": {"2"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []Automation{{Stage: "PROCESSED", Code: "cleanup_contacts", RunAs: 2}}, ra.p.Automations())

	resp, err = c.PostForm(ra.p.URL()+"/sim/lead/2/stage", url.Values{"stage": {"PROCESSED"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Len(t, ra.received(), 1, "the stage control runs the robot")
	form := ra.received()[0]
	r := callJSON(t, ra.p, "bizproc.event.send", form.Get("auth[access_token]"), map[string]any{"event_token": form.Get("event_token"),
		"return_values": map[string]any{"removed": "1"}, "log_message": "Unlinked <b>1</b> contact"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)

	doc, resp = getPage(t, c, ra.p.URL()+"/crm/lead/details/2/")
	assertNoInlineScript(t, doc, resp)
	entry := doc.Find("#robot-log li")
	require.Equal(t, 1, entry.Length())
	assert.Equal(t, "completed", entry.AttrOr("data-state", ""))
	assert.Contains(t, entry.Text(), "removed=1")
	assert.Contains(t, entry.Text(), "Unlinked <b>1</b> contact", "escaped, shown as text")
	assert.Zero(t, entry.Find("b").Length())

	// Others cannot use the designer control.
	c2 := browser(t)
	getPage(t, c2, ra.p.URL()+"/?user=2")
	resp, err = c2.PostForm(ra.p.URL()+"/sim/automation", url.Values{"code": {"cleanup_contacts"}, "stage": {"NEW"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}
