// Package lang holds the user-facing text of the app: message catalogues
// keyed by Bitrix24's LANG codes (which are not ISO codes: "ua" is
// Ukrainian, "br" Brazilian Portuguese, "la" Spanish, "sc"/"tc" simplified
// and traditional Chinese), with CLDR plural rules from go-i18n and English
// as the fallback for anything missing.
package lang

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.toml
var locales embed.FS

// Fallback is the language used when a code is unknown or a key missing.
const Fallback = "en"

// tags maps Bitrix24 LANG codes to BCP 47 tags (for plural rules and the
// HTML lang attribute). Source: b24restdocs bx24-get-lang.md.
var tags = map[string]language.Tag{
	"en": language.English,
	"ru": language.Russian,
	"de": language.German,
	"la": language.MustParse("es"),
	"br": language.MustParse("pt-BR"),
	"fr": language.French,
	"it": language.Italian,
	"pl": language.Polish,
	"tr": language.Turkish,
	"ua": language.Ukrainian,
	"kz": language.Kazakh,
	"ja": language.Japanese,
	"sc": language.MustParse("zh-Hans"),
	"tc": language.MustParse("zh-Hant"),
	"vn": language.Vietnamese,
	"id": language.Indonesian,
	"ms": language.Malay,
	"th": language.Thai,
	"ar": language.Arabic,
}

// rtl lists the right-to-left languages among the supported codes.
var rtl = map[string]bool{"ar": true}

// Bundle holds every catalogue. English, the fallback, is parsed by Load;
// each other language when it is first asked for, so that starting the
// app does not wait for nineteen parses (most of its cold start before)
// and an instance keeps only the languages its portals speak (140 KB
// each). It is safe for concurrent use.
type Bundle struct {
	en    []*i18n.Message
	langs map[string]*catalogue // by code; every code with a file
	codes []string              // sorted
	// matcher picks a catalogue for a browser's languages; matched[i] is
	// the code of its i-th supported tag (the fallback first).
	matcher language.Matcher
	matched []string
}

// catalogue is one language's messages, with English under them for any
// key it lacks, parsed once.
type catalogue struct {
	file   string
	once   sync.Once
	bundle *i18n.Bundle
	keys   map[string]bool
	err    error
	loc    *Localizer // shared: a Localizer is read-only
}

// Load parses the English catalogue and lists the others
// (locales/<code>.toml).
func Load() (*Bundle, error) {
	files, err := fs.Glob(locales, "locales/*.toml")
	if err != nil {
		return nil, err
	}
	b := &Bundle{langs: map[string]*catalogue{}}
	for _, f := range files {
		code := strings.TrimSuffix(path.Base(f), ".toml")
		if _, ok := tags[code]; !ok {
			return nil, fmt.Errorf("lang: %s: not a Bitrix24 LANG code", f)
		}
		b.langs[code] = &catalogue{file: f}
		b.codes = append(b.codes, code)
	}
	sort.Strings(b.codes)
	en, ok := b.langs[Fallback]
	if !ok {
		return nil, fmt.Errorf("lang: no %s catalogue", Fallback)
	}
	if err := b.load(Fallback, en); err != nil {
		return nil, err
	}
	supported := []language.Tag{tags[Fallback]}
	b.matched = []string{Fallback}
	for _, code := range b.codes {
		if code != Fallback {
			supported = append(supported, tags[code])
			b.matched = append(b.matched, code)
		}
	}
	b.matcher = language.NewMatcher(supported)
	return b, nil
}

// load parses code's catalogue once, on top of the English messages.
func (b *Bundle) load(code string, c *catalogue) error {
	c.once.Do(func() {
		c.bundle = i18n.NewBundle(language.English)
		c.bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
		if code != Fallback {
			c.err = c.bundle.AddMessages(language.English, b.en...)
		}
		data, err := locales.ReadFile(c.file)
		if err != nil {
			c.err = err
			return
		}
		// go-i18n takes the language from the file name, so name it by
		// the BCP 47 tag rather than the Bitrix24 code.
		mf, err := c.bundle.ParseMessageFileBytes(data, tags[code].String()+".toml")
		if err != nil {
			c.err = fmt.Errorf("lang: %s: %w", c.file, err)
			return
		}
		c.keys = map[string]bool{}
		for _, m := range mf.Messages {
			c.keys[m.ID] = true
		}
		if code == Fallback {
			b.en = mf.Messages
		}
		c.loc = &Localizer{code: code, loc: i18n.NewLocalizer(c.bundle, tags[code].String(), language.English.String())}
	})
	return c.err
}

// Codes returns the LANG codes that have a catalogue.
func (b *Bundle) Codes() []string { return append([]string(nil), b.codes...) }

// Keys returns the message ids of one catalogue.
func (b *Bundle) Keys(code string) []string {
	c, ok := b.langs[code]
	if !ok || b.load(code, c) != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(c.keys))
}

// Normalize turns whatever arrived as LANG into a supported code: lower
// case, trimmed, and the fallback when unknown.
func (b *Bundle) Normalize(code string) string {
	code = strings.ToLower(strings.TrimSpace(code))
	if _, ok := b.langs[code]; ok {
		return code
	}
	return Fallback
}

// For returns a localizer for a Bitrix24 LANG code. A catalogue that
// cannot be parsed (the tests parse every one, so never in a build)
// speaks English rather than fail a page.
func (b *Bundle) For(code string) *Localizer {
	code = b.Normalize(code)
	c := b.langs[code]
	if b.load(code, c) != nil {
		c = b.langs[Fallback]
	}
	return c.loc
}

// Localizer renders messages in one language. Messages without template
// data are rendered once and kept: most of a page's text.
type Localizer struct {
	code  string
	loc   *i18n.Localizer
	plain sync.Map // message id → string
}

// Code returns the Bitrix24 LANG code.
func (l *Localizer) Code() string { return l.code }

// Tag returns the BCP 47 tag, for <html lang>.
func (l *Localizer) Tag() string { return tags[l.code].String() }

// Dir returns "rtl" or "ltr", for <html dir>.
func (l *Localizer) Dir() string {
	if rtl[l.code] {
		return "rtl"
	}
	return "ltr"
}

// T renders message id with template data (pairs of key, value).
func (l *Localizer) T(id string, kv ...any) string {
	if len(kv) > 0 {
		return l.render(id, nil, kv)
	}
	if s, ok := l.plain.Load(id); ok {
		return s.(string)
	}
	s := l.render(id, nil, nil)
	if s != id { // only the catalogue's keys: the cache stays bounded
		l.plain.Store(id, s)
	}
	return s
}

// N renders a plural message id for count; the template sees .Count too.
func (l *Localizer) N(id string, count int, kv ...any) string {
	return l.render(id, count, append(kv, "Count", count))
}

func (l *Localizer) render(id string, count any, kv []any) string {
	data := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			data[k] = kv[i+1]
		}
	}
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if err != nil && s == "" {
		// A missing key is a bug caught by the catalogue test; show the id
		// rather than an empty string so it is visible, never a panic.
		return id
	}
	return s
}

// Known reports whether code (as Bitrix24 sends LANG) has a catalogue.
func (b *Bundle) Known(code string) bool {
	_, ok := b.langs[strings.ToLower(strings.TrimSpace(code))]
	return ok
}

// Match returns the LANG code of the catalogue that best serves a
// browser's Accept-Language header, for pages opened outside Bitrix24
// (which sends no LANG there): "uk" finds ua, "zh-TW" tc, "pt" br, "es-MX"
// la. The fallback when nothing matches or the header does not parse.
func (b *Bundle) Match(acceptLanguage string) string {
	want, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(want) == 0 {
		return Fallback
	}
	_, i, conf := b.matcher.Match(want...)
	if conf == language.No {
		return Fallback
	}
	return b.matched[i]
}
