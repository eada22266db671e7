package simulator

import (
	"net/url"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frameLang is the LANG in the query of a page's frame POST.
func frameLang(t *testing.T, doc *goquery.Document) string {
	t.Helper()
	action, err := url.Parse(doc.Find("form#frame-form").AttrOr("action", ""))
	require.NoError(t, err)
	return action.Query().Get("LANG")
}

// The top bar's picker offers Bitrix24's 19 languages, each named in
// itself; the choice sticks (a cookie of the portal's) and reaches apps
// as Bitrix24 sends it, as LANG in the frame POST's query, and picks the
// tab's title from LANG_ALL.
func TestLanguagePicker(t *testing.T) {
	s := newTestSim(t, func(o *Options) { o.App.AppURL = "https://app.example.com/app" })
	p, c := newTestPortal(t, s), browser(t)
	tok := mustInstall(t, p)
	bind := map[string]any{"PLACEMENT": "CRM_LEAD_DETAIL_TAB", "HANDLER": "https://app.example.com/tab", "TITLE": "Remove contacts",
		"LANG_ALL": map[string]any{"ru": map[string]any{"TITLE": "Удалить контакты"}}}
	require.Equal(t, 200, callJSON(t, p, "placement.bind", tok.AccessToken, bind).Status)

	doc, _ := getPage(t, c, p.URL()+"/crm/lead/details/1/?tab=app")
	opts := doc.Find("#lang-picker option")
	require.Equal(t, 19, opts.Length())
	seen := map[string]bool{}
	opts.Each(func(i int, o *goquery.Selection) {
		seen[o.AttrOr("value", "")] = true
		assert.NotEmpty(t, o.AttrOr("lang", ""), "option %d names its language for screen readers", i)
	})
	for _, code := range []string{"en", "de", "la", "br", "fr", "it", "pl", "ru", "ua", "kz", "tr", "id", "ms", "vn", "th", "ja", "sc", "tc", "ar"} {
		assert.True(t, seen[code], "the picker offers %s", code)
	}
	assert.Equal(t, "Русский", doc.Find(`#lang-picker option[value="ru"]`).Text())
	assert.Equal(t, "uk", doc.Find(`#lang-picker option[value="ua"]`).AttrOr("lang", ""))
	assert.Equal(t, "en", doc.Find("#lang-picker option[selected]").AttrOr("value", ""), "the portal's language first")
	assert.Equal(t, "en", frameLang(t, doc))
	assert.Equal(t, "get", doc.Find("#lang-form").AttrOr("method", ""))
	assert.Equal(t, "/crm/lead/details/1/", doc.Find("#lang-form").AttrOr("action", ""))
	assert.Equal(t, "app", doc.Find(`#lang-form input[type="hidden"][name="tab"]`).AttrOr("value", ""), "picking keeps the tab")

	// What the picker's form submits; afterwards the choice sticks.
	doc, _ = getPage(t, c, p.URL()+"/crm/lead/details/1/?tab=app&lang=ru")
	assert.Equal(t, "ru", frameLang(t, doc))
	for _, u := range []string{"/crm/lead/details/1/?tab=app", "/crm/lead/details/1/?tab=app&user=2", "/crm/lead/details/1/?tab=app&lang=xx"} {
		doc, _ = getPage(t, c, p.URL()+u)
		assert.Equal(t, "ru", frameLang(t, doc), u)
		assert.Equal(t, "ru", doc.Find("#lang-picker option[selected]").AttrOr("value", ""), u)
		assert.Equal(t, "Удалить контакты", doc.Find(`#lead-tabs .tab[data-tab="app"]`).Text(), u)
	}

	// Another browser has its own choice.
	doc, _ = getPage(t, browser(t), p.URL()+"/crm/lead/details/1/?tab=app")
	assert.Equal(t, "en", frameLang(t, doc))

	// The app's page and the installer carry it too.
	doc, _ = getPage(t, c, p.URL()+"/marketplace/app/")
	assert.Equal(t, "ru", frameLang(t, doc))
	doc, _ = getPage(t, c, p.URL()+"/marketplace/install/?user=1")
	assert.Equal(t, "ru", frameLang(t, doc))
}

// Switching user keeps the page and its query (the open tab): each user
// link is the same address with only the user changed.
func TestUserSwitchKeepsThePageAndTab(t *testing.T) {
	p, c := newBrowserTest(t)
	doc, _ := getPage(t, c, p.URL()+"/crm/lead/details/3/?tab=app&user=1&lang=de")
	links := doc.Find("a.user-link")
	require.Equal(t, len(p.users), links.Length()) // the seeded users; no request is running
	links.Each(func(_ int, a *goquery.Selection) {
		u, err := url.Parse(a.AttrOr("href", ""))
		require.NoError(t, err)
		assert.Equal(t, "/crm/lead/details/3/", u.Path)
		assert.Equal(t, url.Values{"tab": {"app"}, "user": {a.AttrOr("data-user-id", "")}}, u.Query(),
			"the tab stays; the language is remembered, not repeated")
	})
	assert.Equal(t, "true", doc.Find(`a.user-link[data-user-id="1"]`).AttrOr("aria-current", ""))

	doc, _ = getPage(t, c, p.URL()+doc.Find(`a.user-link[data-user-id="2"]`).AttrOr("href", ""))
	assert.Equal(t, "2", doc.Find("#current-user").AttrOr("data-user-id", ""))
	assert.Equal(t, "de", doc.Find("#lang-picker option[selected]").AttrOr("value", ""), "switching user keeps the language")
}
