package test

import "github.com/bayeuxhub/bayeuxhub/protocol"

type protocolMessage = protocol.Message
