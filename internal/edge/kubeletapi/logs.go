package kubeletapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// timestampFormat is how the kubelet prints timestamps (fixed width).
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// logOptions are the query parameters of /containerLogs (PodLogOptions as
// the API server encodes them).
type logOptions struct {
	follow, timestamps bool
	since              time.Time // zero: from the start
	tail               int64     // <0: all lines
	limit              int64     // <=0: no limit
	stdout, stderr     bool
}

func parseBool(q url.Values, key string) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q is not a boolean", key, v)
	}
	return b, nil
}

func parseLogOptions(q url.Values, now time.Time) (logOptions, error) {
	o := logOptions{tail: -1, stdout: true, stderr: true}
	var errs []error
	var err error
	if o.follow, err = parseBool(q, "follow"); err != nil {
		errs = append(errs, err)
	}
	if o.timestamps, err = parseBool(q, "timestamps"); err != nil {
		errs = append(errs, err)
	}
	if _, err = parseBool(q, "previous"); err != nil {
		errs = append(errs, err)
	}
	intParam := func(key string, min int64) (int64, bool) {
		v := q.Get(key)
		if v == "" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s=%q must be an integer of at least %d", key, v, min))
			return 0, false
		}
		return n, true
	}
	if n, ok := intParam("tailLines", 0); ok {
		o.tail = n
	}
	if n, ok := intParam("limitBytes", 1); ok {
		o.limit = n
	}
	if n, ok := intParam("sinceSeconds", 1); ok {
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if !o.since.IsZero() {
			errs = append(errs, errors.New("sinceSeconds and sinceTime cannot both be set"))
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("sinceTime=%q is not an RFC 3339 time", v))
		}
		o.since = t
	}
	switch s := q.Get("stream"); s {
	case "", "All":
	case "Stdout":
		o.stderr = false
	case "Stderr":
		o.stdout = false
	default:
		errs = append(errs, fmt.Errorf("stream=%q must be All, Stdout or Stderr", s))
	}
	return o, errors.Join(errs...)
}

// entry is one line of a CRI log file:
//
//	<RFC 3339 timestamp> <stdout|stderr> <P|F>[:more tags] <message>
//
// P marks a fragment of a longer line, continued by the next entry of the
// same stream; F ends the line.
type entry struct {
	ts      time.Time
	stream  string
	partial bool
	// msg keeps the newline for full lines.
	msg []byte
}

var errBadLine = errors.New("not a CRI log line")

// parseEntry parses one line, newline included (or not, for a last line
// still being written).
func parseEntry(line []byte) (entry, error) {
	var e entry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, errBadLine
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, errBadLine
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return e, errBadLine
	}
	tags, msg, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// An empty message may lose its separator: "… stdout F\n".
		tags, msg = bytes.TrimSuffix(rest, []byte{'\n'}), []byte{'\n'}
	}
	tag, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(tag) {
	case "P":
		e.partial = true
		msg = bytes.TrimSuffix(msg, []byte{'\n'})
	case "F":
		if !bytes.HasSuffix(msg, []byte{'\n'}) {
			msg = append(msg[:len(msg):len(msg)], '\n')
		}
	default:
		return e, errBadLine
	}
	e.ts, e.stream, e.msg = t, string(stream), msg
	return e, nil
}

// lineSplitter tracks logical lines: fragments (P) of one stream up to its
// next full entry (F) are one line. It decides once per logical line —
// at its first fragment — whether the line is shown.
type lineSplitter struct {
	opts logOptions
	// open[stream] is whether the stream is inside a line; shown[stream]
	// whether that line is shown.
	open, shown map[string]bool
}

func newSplitter(o logOptions) *lineSplitter {
	return &lineSplitter{opts: o, open: map[string]bool{}, shown: map[string]bool{}}
}

// next returns whether e starts a line, and whether it is shown (subject
// to the tail, which the caller applies per started line).
func (s *lineSplitter) next(e entry, skip func() bool) (start, shown bool) {
	start = !s.open[e.stream]
	if start {
		want := (e.stream == "stdout" && s.opts.stdout) || (e.stream == "stderr" && s.opts.stderr)
		want = want && (s.opts.since.IsZero() || !e.ts.Before(s.opts.since))
		if want && skip != nil && skip() {
			want = false
		}
		s.shown[e.stream] = want
	}
	s.open[e.stream] = e.partial
	return start, s.shown[e.stream]
}

// logWriter writes shown entries, with timestamps if asked, up to the
// byte limit.
type logWriter struct {
	w       io.Writer
	opts    logOptions
	split   *lineSplitter
	skip    int64 // lines still to skip for the tail
	written int64
}

// errLimit ends the output at limitBytes.
var errLimit = errors.New("limitBytes reached")

func (lw *logWriter) write(e entry) error {
	start, shown := lw.split.next(e, func() bool {
		if lw.skip > 0 {
			lw.skip--
			return true
		}
		return false
	})
	if !shown {
		return nil
	}
	var out []byte
	if start && lw.opts.timestamps {
		out = append(out, e.ts.Format(timestampFormat)...)
		out = append(out, ' ')
	}
	out = append(out, e.msg...)
	if lw.opts.limit > 0 {
		left := lw.opts.limit - lw.written
		if int64(len(out)) >= left {
			_, err := lw.w.Write(out[:left])
			lw.written += left
			if err != nil {
				return err
			}
			return errLimit
		}
	}
	n, err := lw.w.Write(out)
	lw.written += int64(n)
	return err
}

// lineReader returns the complete lines of a file that may still grow.
type lineReader struct {
	f    *os.File
	buf  []byte
	rest []byte // an incomplete last line
}

func newLineReader(f *os.File) *lineReader {
	return &lineReader{f: f, buf: make([]byte, 32<<10)}
}

// next returns the next complete line, or io.EOF when the file has no
// complete line beyond what was read (more may come).
func (r *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.rest, '\n'); i >= 0 {
			line := r.rest[:i+1]
			r.rest = r.rest[i+1:]
			return line, nil
		}
		n, err := r.f.Read(r.buf)
		if n > 0 {
			r.rest = append(r.rest[:len(r.rest):len(r.rest)], r.buf[:n]...)
			continue
		}
		if err == nil {
			err = io.EOF
		}
		return nil, err
	}
}

// tail returns an incomplete last line (for a file that is done).
func (r *lineReader) tail() []byte { return r.rest }

// logFiles returns a container's log files, oldest first: rotated ones
// (<path>.<UTC time>, see podruntime) and the current one.
func logFiles(path string) []string {
	rotated, _ := filepath.Glob(globEscape(path) + ".*")
	sort.Strings(rotated)
	files := make([]string, 0, len(rotated)+1)
	for _, f := range rotated {
		if !strings.HasSuffix(f, ".tmp") && !strings.HasSuffix(f, ".gz") {
			files = append(files, f)
		}
	}
	return append(files, path)
}

func globEscape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`).Replace(p)
}

// countLines counts the logical lines of file that the options show.
func countLines(file string, o logOptions) (int64, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	split := newSplitter(o)
	r := newLineReader(f)
	var n int64
	count := func(line []byte) {
		if e, err := parseEntry(line); err == nil {
			if start, shown := split.next(e, nil); start && shown {
				n++
			}
		}
	}
	for {
		line, err := r.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return 0, err
			}
			if len(r.tail()) > 0 {
				count(r.tail())
			}
			return n, nil
		}
		count(line)
	}
}

// follower reports whether a followed container still runs.
type follower struct {
	running func(context.Context) bool
	poll    time.Duration
	flush   func()
}

// writeLogs writes the logs of a container whose current log file is
// path; with o.follow it then follows the file (through rotations) until
// the container stops or ctx ends.
func writeLogs(ctx context.Context, w io.Writer, path string, o logOptions, fl follower) error {
	files := logFiles(path)
	lw := &logWriter{w: w, opts: o, split: newSplitter(o)}
	if o.tail >= 0 {
		// Newest files first until they hold enough lines.
		var total int64
		first := len(files) - 1
		for ; first >= 0; first-- {
			n, err := countLines(files[first], o)
			if err != nil {
				return err
			}
			total += n
			if total >= o.tail {
				break
			}
		}
		first = max(first, 0)
		files = files[first:]
		lw.skip = max(total-o.tail, 0)
	}
	for _, file := range files[:len(files)-1] {
		if err := copyFile(file, lw); err != nil {
			return err
		}
	}
	if !o.follow {
		return copyFile(path, lw)
	}
	return follow(ctx, path, lw, fl)
}

// copyFile writes all entries of a file that will not grow.
func copyFile(file string, lw *logWriter) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil // removed by rotation meanwhile, or never written
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := newLineReader(f)
	err = drain(r, lw)
	if err == nil && len(r.tail()) > 0 {
		if e, perr := parseEntry(r.tail()); perr == nil {
			err = lw.write(e)
		}
	}
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

// drain writes every complete line r has; nil at the end of the file.
func drain(r *lineReader, lw *logWriter) error {
	for {
		line, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		e, perr := parseEntry(line)
		if perr != nil {
			continue // not written by the runtime: skip it, as the kubelet does
		}
		if err := lw.write(e); err != nil {
			return err
		}
	}
}

// follow writes path's entries as they are appended, switching to the new
// file when the log is rotated, until the container stops (and its last
// lines are out) or ctx ends.
func follow(ctx context.Context, path string, lw *logWriter, fl follower) error {
	open := func() (*os.File, os.FileInfo, error) {
		for {
			f, err := os.Open(path)
			if err == nil {
				st, err := f.Stat()
				if err != nil {
					f.Close()
					return nil, nil, err
				}
				return f, st, nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return nil, nil, err
			}
			// Between rotation's rename and the runtime reopening the
			// file, or the container has not written yet.
			if !fl.running(ctx) {
				return nil, nil, nil
			}
			select {
			case <-ctx.Done():
				return nil, nil, nil
			case <-time.After(fl.poll):
			}
		}
	}
	f, st, err := open()
	if f == nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	r := newLineReader(f)
	lastCheck := time.Now()
	for {
		err := drain(r, lw)
		if errors.Is(err, errLimit) {
			return nil
		}
		if err != nil {
			return err
		}
		fl.flush()
		if cur, err := os.Stat(path); err == nil && !os.SameFile(cur, st) {
			// Rotated: the runtime now writes to a new file. Finish the
			// old one, then continue with the new one from its start.
			if err := drain(r, lw); err != nil {
				if errors.Is(err, errLimit) {
					return nil
				}
				return err
			}
			f.Close()
			if f, st, err = open(); f == nil {
				return err
			}
			r = newLineReader(f)
			continue
		}
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if !fl.running(ctx) {
				// Stopped: what it wrote last is in the file by now.
				err := drain(r, lw)
				if errors.Is(err, errLimit) {
					err = nil
				}
				fl.flush()
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(fl.poll):
		}
	}
}
