package simulator

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// Language is one of Bitrix24's interface languages as its LANG code
// names it (sdk/bx24-js-sdk/additional-functions/bx24-get-lang.md lists
// the codes; they are Bitrix's own, not ISO 639: ua is Ukrainian, br
// Brazilian Portuguese, la Spanish, sc and tc Simplified and Traditional
// Chinese, vn Vietnamese).
type Language struct {
	Code  string // LANG, e.g. "ua"
	Tag   string // the BCP 47 tag, for the lang attribute, e.g. "uk"
	Label string // the language's name in itself, e.g. "Українська"
}

// Languages are the interface languages the simulated portal offers, in
// the order of Bitrix24's own language menu. Real cloud portals offer ru
// only in the Russian region (bx24-get-lang.md); the simulator offers
// every language on every portal, so that every catalogue can be seen.
var Languages = []Language{
	{"en", "en", "English"},
	{"de", "de", "Deutsch"},
	{"la", "es", "Español"},
	{"br", "pt-BR", "Português (Brasil)"},
	{"fr", "fr", "Français"},
	{"it", "it", "Italiano"},
	{"pl", "pl", "Polski"},
	{"ru", "ru", "Русский"},
	{"ua", "uk", "Українська"},
	{"kz", "kk", "Қазақша"},
	{"tr", "tr", "Türkçe"},
	{"id", "id", "Bahasa Indonesia"},
	{"ms", "ms", "Bahasa Melayu"},
	{"vn", "vi", "Tiếng Việt"},
	{"th", "th", "ไทย"},
	{"ja", "ja", "日本語"},
	{"sc", "zh-Hans", "简体中文"},
	{"tc", "zh-Hant", "繁體中文"},
	{"ar", "ar", "العربية"},
}

func knownLang(code string) bool {
	return slices.ContainsFunc(Languages, func(l Language) bool { return l.Code == code })
}

// langOption is one entry of the top bar's language picker.
type langOption struct {
	Language
	Current bool
}

func (p *Portal) langCookie() string { return "b24sim_lang_" + p.memberID[:min(8, len(p.memberID))] }

// currentLang is the interface language of this browser: ?lang=CODE
// (the picker's form, remembered in a cookie; an old lead URL with ?lang=
// keeps working), then the cookie, then the portal's language. Real
// Bitrix24 keeps the choice in the user's settings; the simulator keeps
// it per browser, so that switching user (a simulator shortcut for
// logging in as someone else) keeps the language of the demo.
func (p *Portal) currentLang(w http.ResponseWriter, r *http.Request) string {
	if q := r.URL.Query().Get("lang"); knownLang(q) {
		// #nosec G124 -- the simulated portal's language choice, served over plain http on loopback (tests, demo): Secure would drop it.
		http.SetCookie(w, &http.Cookie{Name: p.langCookie(), Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
		return q
	}
	if c, err := r.Cookie(p.langCookie()); err == nil && knownLang(c.Value) {
		return c.Value
	}
	return p.lang
}

func langOptions(current string) []langOption {
	out := make([]langOption, len(Languages))
	for i, l := range Languages {
		out[i] = langOption{Language: l, Current: l.Code == current}
	}
	return out
}

// userLink is one entry of the top bar's user switch.
type userLink struct {
	User
	Href    string
	Current bool
}

// userLinks point at the same page with the same query (the lead's tab
// stays open) as another user; the user and language parameters are
// dropped, since the cookies remember them.
func userLinks(r *http.Request, users []User, current int) []userLink {
	q := keptQuery(r)
	out := make([]userLink, 0, len(users))
	for _, u := range users {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("user", strconv.Itoa(u.ID))
		out = append(out, userLink{User: u, Href: r.URL.Path + "?" + v.Encode(), Current: u.ID == current})
	}
	return out
}

// keptQuery is the page's query without the user and language switches.
func keptQuery(r *http.Request) url.Values {
	q := r.URL.Query()
	q.Del("user")
	q.Del("lang")
	return q
}

// keptFields are keptQuery as hidden fields of the language picker's GET
// form, so that picking a language reloads the same page and tab.
func keptFields(r *http.Request) []formField {
	q := keptQuery(r)
	var out []formField
	for _, k := range sortedKeys(q) {
		for _, v := range q[k] {
			out = append(out, formField{k, v})
		}
	}
	return out
}
