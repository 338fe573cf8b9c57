<#
.SYNOPSIS
    A LabVIEW test job meant to run under lockd: runs a project's unit tests with LabVIEWCLI and prints one verdict
    marker line that `lockd run --require-marker` reads.

.EXAMPLE
    # One LabVIEW session per machine: queue up to 15 minutes for it, give the tests an hour.
    # In PowerShell a bare -- is eaten when lockd is npm's lockd.ps1 shim: quote it (lockd also takes the command
    # from the first word that is not an option, so it works either way).
    lockd run --global labview-session --wait 900 --timeout 3600 --require-marker 'LABVIEW_TESTS: PASS' '--' `
        powershell -NoProfile -ExecutionPolicy Bypass -File .\examples\labview\run-labview-tests.ps1 -Project .\MyProject.lvproj

.NOTES
    lockd holds the global lock labview-session for exactly as long as this script's process tree lives: when
    --timeout expires, the job is cancelled, or the CI runner kills the lockd client, the daemon ends this
    PowerShell, LabVIEWCLI and what they started (docs/windows.md: a LabVIEW.exe that LabVIEWCLI started and then
    left running detached is not linked to the tree, so this script closes it unless -KeepLabVIEW).
    Exit code: LabVIEWCLI's (0 all tests passed). lockd passes it through, or with --require-marker decides
    0 pass / 1 fail / 2 no marker.
#>
param(
    [Parameter(Mandatory = $true)][string]$Project,
    [string]$Report = 'labview-junit.xml',
    [int]$Port = 3363,
    [switch]$KeepLabVIEW
)

$ErrorActionPreference = 'Stop'
Write-Host "run-labview-tests: $Project (report $Report, CLI port $Port, run $env:LOCKD_RUN_ID)"

# LabVIEW 2020+ ships LabVIEWCLI; RunUnitTests runs the project's Unit Test Framework tests and writes JUnit XML.
& LabVIEWCLI -OperationName RunUnitTests -ProjectPath (Resolve-Path $Project) -JUnitReportPath $Report -PortNumber $Port
$code = $LASTEXITCODE

if (-not $KeepLabVIEW) {
    # Close the LabVIEW instance LabVIEWCLI opened, so the next job under the lock starts from a clean session.
    & LabVIEWCLI -OperationName CloseLabVIEW -PortNumber $Port | Out-Null
}

if ($code -eq 0) { Write-Host 'LABVIEW_TESTS: PASS' } else { Write-Host "LABVIEW_TESTS: FAIL (LabVIEWCLI exit $code)" }
exit $code
