package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// OnAppInstallEvent builds the ONAPPINSTALL form (with fresh tokens of the
// given admin), as documented in api-reference/common/events/on-app-install.md.
func (p *Portal) OnAppInstallEvent(userID int) url.Values {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	tok := p.s.issueLocked(p, userID)
	// Shaped like the recording (mesilov/bitrix24-php-sdk#296,
	// testdata/recorded/event_onappinstall.json): no event_handler_id,
	// auth[expires] and auth[user_id] present.
	_, f := p.eventLocked("ONAPPINSTALL")
	for k, v := range map[string]string{
		"data[VERSION]":       p.s.app.Version,
		"data[ACTIVE]":        "Y",
		"data[INSTALLED]":     yn(p.state == installed),
		"data[LANGUAGE_ID]":   p.lang,
		"auth[access_token]":  tok.AccessToken,
		"auth[expires]":       strconv.FormatInt(p.s.nowLocked().Add(accessTokenTTL).Unix(), 10),
		"auth[expires_in]":    strconv.Itoa(tok.ExpiresIn),
		"auth[scope]":         p.s.scopeString(),
		"auth[user_id]":       strconv.Itoa(userID),
		"auth[status]":        p.s.app.Status,
		"auth[refresh_token]": tok.RefreshToken,
	} {
		f.Set(k, v)
	}
	return f
}

// eventLocked is what every event POST shares: the handlers bound for the
// event, and its form with event, ts and the auth[...] keys of every event.
func (p *Portal) eventLocked(event string) ([]EventBinding, url.Values) {
	var handlers []EventBinding
	for _, e := range p.events {
		if e.Event == event {
			handlers = append(handlers, e)
		}
	}
	return handlers, url.Values{
		"event":                   {event},
		"ts":                      {strconv.FormatInt(p.s.nowLocked().Unix(), 10)},
		"auth[domain]":            {p.Domain()},
		"auth[server_endpoint]":   {p.s.serverEndpoint()},
		"auth[client_endpoint]":   {p.RESTEndpoint()},
		"auth[member_id]":         {p.memberID},
		"auth[application_token]": {p.appToken},
	}
}

// Fire delivers an event to every handler bound for it, with the common
// auth[...] keys plus data (keys without a prefix get "data[...]"). Like
// Bitrix24 it delivers nothing until the install is finished.
func (p *Portal) Fire(ctx context.Context, event string, data url.Values) error {
	event = strings.ToUpper(event)
	p.s.mu.Lock()
	if p.state != installed {
		p.s.mu.Unlock()
		return nil
	}
	handlers, form := p.eventLocked(event)
	for k, vs := range data {
		if !strings.HasPrefix(k, "data[") {
			// FIELDS[ID] becomes data[FIELDS][ID].
			base, rest, _ := strings.Cut(k, "[")
			if rest != "" {
				rest = "[" + rest
			}
			k = "data[" + base + "]" + rest
		}
		form[k] = vs
	}
	p.s.mu.Unlock()
	return p.deliverAll(ctx, handlers, form)
}

// deliverAll posts an event form to each bound handler with its
// event_handler_id, as the queue does; it returns the transport errors
// and the non-2xx answers.
func (p *Portal) deliverAll(ctx context.Context, handlers []EventBinding, form url.Values) error {
	var errs []error
	for _, h := range handlers {
		f := cloneValues(form)
		f.Set("event_handler_id", strconv.Itoa(h.ID))
		resp, err := p.Deliver(ctx, h.Handler, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			errs = append(errs, fmt.Errorf("simulator: %s handler answered %d", f.Get("event"), resp.StatusCode))
		}
	}
	return errors.Join(errs...)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Deliver POSTs an event form to a handler like Bitrix24's queue does
// (application/x-www-form-urlencoded, no redirects followed, no retries). The
// caller closes the response body.
func (p *Portal) Deliver(ctx context.Context, handlerURL string, form url.Values) (*http.Response, error) {
	resp, err := p.post(ctx, handlerURL, form)
	d := Delivery{Time: p.s.Now(), URL: handlerURL, Event: form.Get("event"), Payload: cloneValues(form)}
	if err != nil {
		d.Error = err.Error()
	} else {
		d.Status = resp.StatusCode
	}
	p.s.mu.Lock()
	p.deliveries = append(p.deliveries, d)
	p.s.mu.Unlock()
	p.s.log("portal %s: delivered %s to %s: status %d err %v", p.memberID, d.Event, handlerURL, d.Status, err)
	return resp, err
}

// post is the queue server's POST of a form to an app's handler, for
// events and robots alike. The caller closes the response body.
func (p *Portal) post(ctx context.Context, handlerURL string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, handlerURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
	client := &http.Client{
		Transport: p.s.events,
		Timeout:   30 * time.Second,
		// SILENT: whether the queue follows redirects is undocumented; not
		// following is the strict choice (a moved handler loses the event).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client.Do(req)
}

// Deliveries returns every event POST made so far.
func (p *Portal) Deliveries() []Delivery {
	return locked(p.s, func() []Delivery { return append([]Delivery(nil), p.deliveries...) })
}
