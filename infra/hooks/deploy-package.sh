#!/bin/sh
# deploy-package.sh <resource group> <function app>: build the deployment zip
# (make package) and deploy it to the Flex Consumption app (one deploy into
# its deployment container, with the caller's Azure CLI login).
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 <resource group> <function app name>" >&2
	exit 2
fi
cd "$(dirname "$0")/../.."
CGO_ENABLED=0 go run ./internal/cmd/pack -out bin/entrasync.zip -version "$(git describe --always --dirty 2>/dev/null || echo dev)"
az functionapp deployment source config-zip --resource-group "$1" --name "$2" --src bin/entrasync.zip
