// Package test holds bayeuxhub's end-to-end tests: real servers on
// 127.0.0.1, real HTTP, and the real npm CometD and Faye clients and a real
// browser (interop_test.go, browser_test.go). It has no non-test code.
package test
