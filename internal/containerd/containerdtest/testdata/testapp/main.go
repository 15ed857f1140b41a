// Command testapp is the one binary behind the container images of the
// containerd and pod runtime tests. Its first argument picks a role:
//
//	pause                      sandbox (pause) process: sleep, reap children
//	serve [flags]              HTTP server: / and /healthz (200 only while
//	                           -ready-file exists, if given)
//	crash [-after D] [-code N] print, write a termination message, exit N
//	sleep                      sleep until SIGTERM
//	spam                       print 1 KiB lines as fast as a 1 ms tick allows
//	exit N                     exit with status N at once
//	env                        print the environment, sorted
//	cat FILE...                print files
//	write FILE TEXT            write TEXT to FILE
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp pause|serve|crash|sleep|exit|env|cat|write ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "pause":
		pause()
	case "serve":
		serve(args)
	case "crash":
		fs := flag.NewFlagSet("crash", flag.ExitOnError)
		after := fs.Duration("after", 200*time.Millisecond, "run this long first")
		code := fs.Int("code", 1, "exit status")
		_ = fs.Parse(args)
		fmt.Println("crasher started; exiting soon")
		time.Sleep(*after)
		_ = os.WriteFile("/dev/termination-log", []byte("crashed on purpose"), 0o644)
		fmt.Println("crasher exiting with", *code)
		os.Exit(*code)
	case "sleep":
		waitSignal()
	case "spam":
		line := strings.Repeat("x", 1023)
		for i := 0; ; i++ {
			fmt.Println(line)
			if i%8 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	case "exit":
		n, _ := strconv.Atoi(args[0])
		os.Exit(n)
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Println(e)
		}
	case "cat":
		for _, f := range args {
			data, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Stdout.Write(data)
		}
	case "write":
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown role", os.Args[1])
		os.Exit(2)
	}
}

func waitSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

// pause is PID 1 of a pod sandbox: it holds the namespaces and reaps
// orphans until told to stop.
func pause() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	readyFile := fs.String("ready-file", "", "healthz answers 200 only while this file exists")
	termMarker := fs.String("term-marker", "", "write this file on SIGTERM")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM (only SIGKILL stops it)")
	_ = fs.Parse(args)

	mux := http.NewServeMux()
	host, _ := os.Hostname()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if *readyFile != "" {
			if _, err := os.Stat(*readyFile); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	go func() {
		if err := http.ListenAndServe(*addr, mux); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	fmt.Println("serving on", *addr)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	for range ch {
		if *termMarker != "" {
			_ = os.WriteFile(*termMarker, []byte("sigterm"), 0o644)
		}
		if !*ignoreTerm {
			fmt.Println("SIGTERM: exiting")
			os.Exit(0)
		}
		fmt.Println("SIGTERM ignored")
	}
}
