package test

// TestBrowserHistory drives the chat page (htdocs/index.html, chat.js) of
// the standalone binary, run without a config file (its default rules keep
// the last 100 messages of each /chat/** room and track who is in it), in
// headless Debian Chromium through the DevTools protocol, spoken here
// directly over a WebSocket (no Node). Every wait polls the page's DOM.
//
// Needs /usr/bin/chromium (test/browser/setup.sh installs it). Without it
// the test skips, unless CI is set: then it fails.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bayeuxhub/bayeuxhub/auth"
)

// historyWait bounds each wait for the page: generous, for -race and busy
// machines (a condition that holds returns at once). A page that closes
// leaves the others' online lists at once (its pagehide disconnects), or
// at the latest when the hub drops its session, --max-interval (10 s)
// after its last /meta/connect.
const historyWait = 40 * time.Second

func TestBrowserHistory(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(browserChromium); err != nil {
		msg := fmt.Sprintf("missing %s; run test/browser/setup.sh", browserChromium)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bin := buildCommand(t)
	tmp := t.TempDir()
	logFile, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// No channel rules: the standalone defaults. A token key (with
	// anonymous users still let in) so that one page is a named user.
	const secret = "browser-history-secret-0123456789-abcdef"
	srv := &browserServer{bin: bin, port: browserFreePort(t), log: logFile,
		args: []string{"--jwt-hmac-secret", secret, "--allow-anonymous"}}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = srv.kill()
		if t.Failed() {
			if data, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("server log (last 4000 bytes):\n%s", browserTail(data, 4000))
			}
		}
	}()
	bob, err := auth.MintHS256([]byte(secret), auth.Claims{Subject: "bob", Info: map[string]string{"name": "Bob"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := srv.baseURL()
	d := startDevtools(t)

	// Before any page: five messages, kept by the hub.
	var want []string
	want = append(want, historyPublish(t, base, "h", 5)...)

	// Page A (WebSocket, anonymous) shows them as earlier messages, then
	// the live ones.
	a := d.open("A", base+"/")
	a.wait("the five earlier messages", func(s historySnap) error {
		if err := s.live(); err != nil {
			return err
		}
		if err := s.shows(want); err != nil {
			return err
		}
		if s.Asked != -2 {
			return fmt.Errorf("first subscribe asked for replay %v, want -2", s.Asked)
		}
		return s.earlier(want, nil)
	})
	live := historyPublish(t, base, "l", 3)
	all := append(slices.Clone(want), live...)
	a.wait("the live messages after the earlier ones", func(s historySnap) error {
		if err := s.shows(all); err != nil {
			return err
		}
		return s.earlier(want, live)
	})
	a.wait("A alone in its online list", func(s historySnap) error {
		return s.online("guest")
	})

	// Page B, another browser context, with bob's token, long-polling:
	// in A's online list by its token's name, gone once it closes.
	b := d.open("B", base+"/?transport=long-polling#token="+bob)
	b.wait("the earlier messages over long-polling, and Bob online", func(s historySnap) error {
		if err := s.live(); err != nil {
			return err
		}
		if err := s.shows(all); err != nil {
			return err
		}
		if err := s.earlier(all, nil); err != nil {
			return err
		}
		return s.online("Bob (you)", "guest")
	})
	a.wait("Bob in A's online list", func(s historySnap) error {
		return s.online("Bob", "guest")
	})
	both := historyPublish(t, base, "b", 2)
	all = append(all, both...)
	for _, p := range []*historyPage{a, b} {
		p.wait("live messages", func(s historySnap) error {
			if err := s.shows(all); err != nil {
				return err
			}
			return s.earlier(nil, both)
		})
	}
	b.close()
	a.wait("Bob gone from A's online list", func(s historySnap) error {
		return s.online("guest")
	})

	// A reloads. Messages published after it disconnected and while it
	// loads again appear once, after the ones it showed, none twice.
	if err := a.eval(`window.__historyTestOld = true; window.chatClient.disconnect().then(() => true)`, nil); err != nil {
		t.Fatal(err)
	}
	a.wait("A disconnected", func(s historySnap) error {
		if s.Status != "disconnected" {
			return fmt.Errorf("status %q", s.Status)
		}
		return nil
	})
	away := historyPublish(t, base, "r", 3)
	if err := a.call("Page.reload", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	loading := historyPublish(t, base, "s", 3)
	seen := slices.Clone(all)
	all = append(append(all, away...), loading...)
	a.wait("the reloaded page with every message once", func(s historySnap) error {
		if !s.Fresh {
			return errors.New("still the page from before the reload")
		}
		if err := s.live(); err != nil {
			return err
		}
		if err := s.shows(all); err != nil {
			return err
		}
		if s.Asked <= 0 {
			return fmt.Errorf("the reloaded page asked for replay %v, want the last replay id it had shown", s.Asked)
		}
		if err := s.notice("no longer keeps"); err == nil {
			return errors.New("the reloaded page says messages may be missing")
		}
		return s.earlier(append(slices.Clone(seen), away...), nil)
	})

	// Page C long-polls: it too shows everything kept.
	c := d.open("C", base+"/?transport=long-polling")
	c.wait("every message, as earlier ones", func(s historySnap) error {
		if err := s.live(); err != nil {
			return err
		}
		if err := s.shows(all); err != nil {
			return err
		}
		return s.earlier(all, nil)
	})

	// The hub restarts: its history starts afresh, the pages' replay ids
	// are refused (400), and they ask for everything kept instead (nothing
	// yet), say so, and go on with the live messages.
	if err := srv.kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*historyPage{a, c} {
		p.wait("the notice after the restart", func(s historySnap) error {
			if err := s.live(); err != nil {
				return err
			}
			if s.Asked != -2 {
				return fmt.Errorf("asked for replay %v after the refusal, want -2", s.Asked)
			}
			return s.notice("no longer keeps")
		})
	}
	after := historyPublish(t, base, "t", 2)
	all = append(all, after...)
	for _, p := range []*historyPage{a, c} {
		p.wait("the messages after the restart", func(s historySnap) error {
			if err := s.shows(all); err != nil {
				return err
			}
			return s.earlier(nil, after)
		})
	}
	d.checkExceptions()
}

// historyPublish publishes n chat messages <prefix>01… on /chat/demo as
// one batch, from a client of its own, and returns their texts.
func historyPublish(t *testing.T, base, prefix string, n int) []string {
	t.Helper()
	c := &client{t: t, url: base + "/cometd", http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true}}}
	c.start()
	var texts []string
	var msgs []msg
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("%s%02d", prefix, i)
		texts = append(texts, text)
		msgs = append(msgs, msg{"channel": "/chat/demo", "clientId": c.id, "id": c.nextID(),
			"data": msg{"user": "go", "chat": text}})
	}
	_, replies := c.post(msgs...)
	ok := 0
	for _, r := range replies {
		if r["channel"] == "/chat/demo" && r["successful"] == true {
			ok++
		}
	}
	if ok != n {
		t.Fatalf("publish %v: %v", texts, replies)
	}
	c.post(msg{"channel": "/meta/disconnect", "clientId": c.id, "id": c.nextID()})
	return texts
}

// historySnap is what the page shows, read from its DOM.
type historySnap struct {
	Status   string  `json:"status"`
	Room     string  `json:"room"` // body[data-room]: joining, catching-up, live
	Fresh    bool    `json:"fresh"`
	Asked    float64 `json:"asked"` // the replay id the last subscribe asked for (0: none yet)
	Messages []struct {
		User    string `json:"user"`
		Text    string `json:"text"`
		Earlier bool   `json:"earlier"`
	} `json:"messages"`
	System []string `json:"system"`
	Online []string `json:"online"`
}

const historySnapJS = `(() => {
  const text = (el, sel) => { const n = el.querySelector(sel); return n ? n.textContent.trim() : ''; };
  return {
    status: document.getElementById('status').textContent.trim(),
    fresh: !window.__historyTestOld,
    room: document.body.getAttribute('data-room'),
    asked: window.chatState ? window.chatState.replayAsked() : null,
    messages: Array.from(document.querySelectorAll('#log > li.msg')).map((li) =>
      ({user: text(li, '.user'), text: text(li, '.text'), earlier: li.classList.contains('earlier')})),
    system: Array.from(document.querySelectorAll('#log > li.system')).map((li) => text(li, '.text')),
    online: Array.from(document.querySelectorAll('#online > li')).map((li) =>
      (li.classList.contains('guest') ? 'guest' : text(li, '.name')) + (li.classList.contains('you') ? ' (you)' : '')),
  };
})()`

func (s historySnap) connected() error {
	if s.Status != "connected" {
		return fmt.Errorf("status %q", s.Status)
	}
	return nil
}

// live checks that the page is connected, subscribed to the room, and
// has been sent the earlier messages: what is published now is live.
func (s historySnap) live() error {
	if err := s.connected(); err != nil {
		return err
	}
	if s.Room != "live" {
		return fmt.Errorf("room state %q", s.Room)
	}
	return nil
}

// shows checks that the page shows exactly texts, once each, in order.
func (s historySnap) shows(texts []string) error {
	var got []string
	for _, m := range s.Messages {
		got = append(got, m.Text)
	}
	if !slices.Equal(got, texts) {
		return fmt.Errorf("messages %v, want %v", got, texts)
	}
	return nil
}

// earlier checks that the messages with the texts of earlier are marked
// as earlier ones and those of live are not.
func (s historySnap) earlier(earlier, live []string) error {
	for _, m := range s.Messages {
		switch {
		case slices.Contains(earlier, m.Text) && !m.Earlier:
			return fmt.Errorf("%s is not marked as an earlier message", m.Text)
		case slices.Contains(live, m.Text) && m.Earlier:
			return fmt.Errorf("%s is marked as an earlier message", m.Text)
		}
	}
	return nil
}

// online checks the online list: names, "guest" for an anonymous member,
// " (you)" after the page's own user.
func (s historySnap) online(names ...string) error {
	if !slices.Equal(s.Online, names) {
		return fmt.Errorf("online %q, want %q", s.Online, names)
	}
	return nil
}

func (s historySnap) notice(text string) error {
	for _, line := range s.System {
		if strings.Contains(line, text) {
			return nil
		}
	}
	return fmt.Errorf("no notice with %q in %q", text, s.System)
}

// devtools is a Chromium run with its DevTools protocol connection.
type devtools struct {
	t      *testing.T
	conn   *websocket.Conn
	ctx    context.Context
	mu     sync.Mutex
	seq    int64
	calls  map[int64]chan devtoolsReply
	labels map[string]string // session id -> page label
	thrown []string          // exceptions thrown in the pages
	closed error
}

type devtoolsReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type devtoolsMessage struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	SessionID string          `json:"sessionId"`
	Params    json.RawMessage `json:"params"`
	devtoolsReply
}

// startDevtools starts a headless Chromium with a profile of its own and
// connects to its DevTools endpoint; the test's cleanup stops it.
func startDevtools(t *testing.T) *devtools {
	t.Helper()
	profile, err := os.MkdirTemp("", "bayeuxhub-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(browserChromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--remote-debugging-port=0", "--user-data-dir="+profile, "about:blank")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers are stopped with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devtools{t: t, ctx: ctx, calls: make(map[int64]chan devtoolsReply), labels: make(map[string]string)}
	readerDone := make(chan struct{})
	t.Cleanup(func() {
		if d.conn != nil {
			_ = d.call("", "Browser.close", nil, nil)
			_ = d.conn.Close(websocket.StatusNormalClosure, "")
			<-readerDone
		}
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		// Its helper processes go with the group; the profile goes once
		// they have (a helper still writing would keep it from going).
		_ = historyPoll(10*time.Second, func() error {
			if err := syscall.Kill(-pgid, 0); err != nil {
				return nil
			}
			return errors.New("chromium helpers still running")
		})
		_ = os.RemoveAll(profile)
		logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("chromium log (last 3000 bytes):\n%s", browserTail(data, 3000))
			}
		}
	})

	// Chromium writes the port and path of its endpoint to the profile.
	var endpoint string
	err = historyPoll(30*time.Second, func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err != nil {
			return err
		}
		lines := strings.Fields(string(data))
		if len(lines) < 2 {
			return fmt.Errorf("DevToolsActivePort is %q", data)
		}
		if _, err := strconv.Atoi(lines[0]); err != nil {
			return err
		}
		endpoint = "ws://127.0.0.1:" + lines[0] + lines[1]
		return nil
	})
	if endpoint == "" {
		close(readerDone)
		t.Fatalf("chromium did not open its DevTools endpoint: %v", err)
	}
	dialCtx, dialCancel := context.WithTimeout(ctx, 30*time.Second)
	conn, _, err := websocket.Dial(dialCtx, endpoint, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	dialCancel()
	if err != nil {
		close(readerDone)
		t.Fatalf("connect to chromium at %s: %v", endpoint, err)
	}
	conn.SetReadLimit(64 << 20)
	d.conn = conn
	go d.read(readerDone)
	return d
}

// read takes the connection's messages: replies to calls, and the
// exceptions pages throw.
func (d *devtools) read(done chan struct{}) {
	defer close(done)
	for {
		_, data, err := d.conn.Read(d.ctx)
		if err != nil {
			d.mu.Lock()
			d.closed = err
			for id, ch := range d.calls {
				close(ch)
				delete(d.calls, id)
			}
			d.mu.Unlock()
			return
		}
		var m devtoolsMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		d.mu.Lock()
		if ch := d.calls[m.ID]; m.ID != 0 && ch != nil {
			delete(d.calls, m.ID)
			ch <- m.devtoolsReply
		} else if m.Method == "Runtime.exceptionThrown" {
			var p struct {
				Details struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			_ = json.Unmarshal(m.Params, &p)
			d.thrown = append(d.thrown, d.labels[m.SessionID]+": "+p.Details.Text+" "+p.Details.Exception.Description)
		}
		d.mu.Unlock()
	}
}

// call sends a DevTools command, to the page of session ("" for the
// browser), and decodes its result into out (when not nil).
func (d *devtools) call(session, method string, params, out any) error {
	if params == nil {
		params = map[string]any{}
	}
	ch := make(chan devtoolsReply, 1)
	d.mu.Lock()
	if d.closed != nil {
		d.mu.Unlock()
		return d.closed
	}
	d.seq++
	id := d.seq
	d.calls[id] = ch
	d.mu.Unlock()
	req := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := d.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: the DevTools connection closed", method)
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		d.mu.Lock()
		delete(d.calls, id)
		d.mu.Unlock()
		return fmt.Errorf("%s: no answer: %w", method, ctx.Err())
	}
}

func (d *devtools) checkExceptions() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.thrown) > 0 {
		d.t.Errorf("uncaught exceptions in the pages: %q", d.thrown)
	}
}

// historyPage is one tab, in a browser context (profile) of its own.
type historyPage struct {
	d                        *devtools
	label                    string
	context, target, session string
}

// open opens url in a new browser context.
func (d *devtools) open(label, url string) *historyPage {
	d.t.Helper()
	p := &historyPage{d: d, label: label}
	var bc struct {
		ID string `json:"browserContextId"`
	}
	var tg struct {
		ID string `json:"targetId"`
	}
	var at struct {
		ID string `json:"sessionId"`
	}
	if err := d.call("", "Target.createBrowserContext", nil, &bc); err != nil {
		d.t.Fatal(err)
	}
	p.context = bc.ID
	if err := d.call("", "Target.createTarget", map[string]any{"url": "about:blank", "browserContextId": bc.ID}, &tg); err != nil {
		d.t.Fatal(err)
	}
	p.target = tg.ID
	if err := d.call("", "Target.attachToTarget", map[string]any{"targetId": tg.ID, "flatten": true}, &at); err != nil {
		d.t.Fatal(err)
	}
	p.session = at.ID
	d.mu.Lock()
	d.labels[at.ID] = label
	d.mu.Unlock()
	if err := p.call("Runtime.enable", nil, nil); err != nil {
		d.t.Fatal(err)
	}
	if err := p.call("Page.navigate", map[string]any{"url": url}, nil); err != nil {
		d.t.Fatal(err)
	}
	return p
}

func (p *historyPage) call(method string, params, out any) error {
	return p.d.call(p.session, method, params, out)
}

// eval evaluates a JavaScript expression in the page (awaiting a
// Promise) and decodes its value into out (when not nil).
func (p *historyPage) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("%s: %s", p.label, r.Exception.Text)
	}
	if out != nil {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// wait polls the page's DOM until cond holds for it.
func (p *historyPage) wait(what string, cond func(historySnap) error) {
	p.d.t.Helper()
	var last historySnap
	err := historyPoll(historyWait, func() error {
		var s historySnap
		if err := p.eval(historySnapJS, &s); err != nil {
			return err // e.g. while the page (re)loads
		}
		last = s
		return cond(s)
	})
	if err != nil {
		p.d.t.Fatalf("%s: %s: %v\nthe page shows %+v", p.label, what, err, last)
	}
}

// close closes the tab and its browser context.
func (p *historyPage) close() {
	p.d.t.Helper()
	if err := p.d.call("", "Target.closeTarget", map[string]any{"targetId": p.target}, nil); err != nil {
		p.d.t.Fatal(err)
	}
	if err := p.d.call("", "Target.disposeBrowserContext", map[string]any{"browserContextId": p.context}, nil); err != nil {
		p.d.t.Fatal(err)
	}
}

// historyPoll is testutil.Poll (checkFor) for a caller that handles the
// error itself: fn every 50 ms until it returns nil or total passes.
func historyPoll(total time.Duration, fn func() error) error {
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v: %w", total, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
