<#
.SYNOPSIS
  Build LLM Workbench for Windows: the PyInstaller one-folder bundle, an Inno Setup installer
  (per-user, no administrator rights) and a portable .zip.

.DESCRIPTION
  powershell -ExecutionPolicy Bypass -File packaging\build_windows.ps1

  Uses the project's .venv (or $env:PYTHON) with the app installed and pyinstaller added
  (pip install pyinstaller). Inno Setup 6.3+ (iscc.exe: winget install JRSoftware.InnoSetup,
  or choco install innosetup) makes the installer; without it only the bundle and the .zip
  are made.

  Environment:
    PYTHON             the Python whose packages are bundled (default .venv\Scripts\python.exe)
    LLMW_BACKEND       cpu | cuda | vulkan: rebuild llama-cpp-python for it first (needs the
                       Visual Studio C++ tools, plus the CUDA toolkit or the Vulkan SDK)
    LLMW_CMAKE_EXTRA   more CMake flags for that rebuild
    LLMW_DIST          where the results go (default dist); LLMW_WORK scratch (default build)

  Results:
    dist\llm-workbench\llm-workbench.exe       the app (no console window)
    dist\llm-workbench\llm-workbench-cli.exe   the same with a console: hardware, --self-test...
    dist\llm-workbench-<version>-windows-x64-setup.exe
    dist\llm-workbench-<version>-windows-x64.zip
#>
$ErrorActionPreference = "Stop"
$started = Get-Date
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root
$App = "llm-workbench"

function Say($text) { Write-Host "== $text" }
function Invoke-Checked {
  param([string]$Exe, [string[]]$Arguments)
  & $Exe @Arguments
  if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed (exit code $LASTEXITCODE)" }
}

$Python = $env:PYTHON
if (-not $Python) {
  $Python = if (Test-Path ".venv\Scripts\python.exe") { ".venv\Scripts\python.exe" } else { "python" }
}
$Dist = if ($env:LLMW_DIST) { $env:LLMW_DIST } else { "dist" }
$Work = if ($env:LLMW_WORK) { $env:LLMW_WORK } else { "build" }
New-Item -ItemType Directory -Force -Path $Dist, $Work | Out-Null
$Dist = (Resolve-Path $Dist).Path
$Work = (Resolve-Path $Work).Path

& $Python -c "import PyInstaller, desktop, llama_cpp"
if ($LASTEXITCODE -ne 0) {
  throw "PyInstaller, the app or llama-cpp-python is missing in $Python; run: $Python -m pip install -e . pyinstaller"
}
$Version = (& $Python -c "import desktop; print(desktop.__version__)").Trim()

function Get-Backends {
  $json = & $Python -m desktop.cli hardware --json --no-bandwidth 2>$null
  if ($LASTEXITCODE -ne 0 -or -not $json) { return @() }
  $info = ($json | Out-String | ConvertFrom-Json).backends
  if ($info.error) { return @() }
  return @($info.backends)
}

# ------------------------------------------------------------------ llama.cpp backend
$Have = Get-Backends
if ($env:LLMW_BACKEND) {
  $Wanted = $env:LLMW_BACKEND
  $Flags = switch ($Wanted) {
    "cpu" { "-DGGML_NATIVE=OFF" }
    "cuda" { "-DGGML_NATIVE=OFF -DGGML_CUDA=on" }
    "vulkan" { "-DGGML_NATIVE=OFF -DGGML_VULKAN=on" }
    default { throw "LLMW_BACKEND must be cpu, cuda or vulkan on Windows (got '$Wanted')" }
  }
  if ($env:LLMW_CMAKE_EXTRA) { $Flags = "$Flags $($env:LLMW_CMAKE_EXTRA)" }
  $gpuBackends = @($Have | Where-Object { $_ -notin @("cpu", "blas") })
  $ok = if ($Wanted -eq "cpu") { $Have.Count -gt 0 -and $gpuBackends.Count -eq 0 } else { $Have -contains $Wanted }
  if ($ok) {
    Say "llama.cpp already built for $Wanted (backends: $($Have -join ', '))"
  } else {
    $LlamaVersion = (& $Python -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))").Trim()
    Say "rebuilding llama-cpp-python $LlamaVersion with CMAKE_ARGS=`"$Flags`" (several minutes)"
    $env:CMAKE_ARGS = $Flags
    & $Python -m pip cache remove "llama_cpp_python*" *> $null  # else pip reuses the old wheel
    Invoke-Checked $Python @("-m", "pip", "install", "--force-reinstall", "--no-deps",
      "--no-binary", "llama-cpp-python", "llama-cpp-python==$LlamaVersion")
    $Have = Get-Backends
  }
} else {
  Say "llama.cpp backends in this build: $($Have -join ', ') (set LLMW_BACKEND to choose)"
}
$env:LLMW_BACKEND = if ($Have.Count) { $Have -join "+" } else { "cpu" }

# ------------------------------------------------------------------ bundle
Say "icons"
Invoke-Checked $Python @("packaging\make_icons.py", "resources\icons\$App.svg", "$Work\icons")
$env:LLMW_ICON_DIR = "$Work\icons"

Say "PyInstaller one-folder bundle ($Version)"
$Bundle = Join-Path $Dist $App
if (Test-Path $Bundle) { Remove-Item -Recurse -Force $Bundle }
Invoke-Checked $Python @("-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
  "--distpath", $Dist, "--workpath", "$Work\pyinstaller", "packaging\$App.spec")
Invoke-Checked "$Bundle\$App-cli.exe" @("--version")

# ------------------------------------------------------------------ installer
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue | Select-Object -First 1).Source
foreach ($candidate in @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe",
                         "$env:ProgramFiles\Inno Setup 6\ISCC.exe",
                         "$env:LOCALAPPDATA\Programs\Inno Setup 6\ISCC.exe")) {
  if (-not $Iscc -and (Test-Path $candidate)) { $Iscc = $candidate }
}
if ($Iscc) {
  Say "Inno Setup installer"
  Invoke-Checked $Iscc @("/Q", "/DAppVersion=$Version", "/DSourceDir=$Bundle", "/DOutputDir=$Dist",
    "/DIconFile=$Work\icons\$App.ico", "packaging\windows\$App.iss")
} else {
  Write-Warning "Inno Setup (iscc.exe) not found: no installer. Install it: winget install JRSoftware.InnoSetup"
}

Say "portable .zip"
$Zip = Join-Path $Dist "$App-$Version-windows-x64.zip"
if (Test-Path $Zip) { Remove-Item -Force $Zip }
Compress-Archive -Path $Bundle -DestinationPath $Zip

# ------------------------------------------------------------------ summary
$size = (Get-ChildItem -Recurse -File $Bundle | Measure-Object -Property Length -Sum).Sum
Say ("done in {0:N0} s; bundle {1:N0} MB (llama.cpp: {2})" -f ((Get-Date) - $started).TotalSeconds, ($size / 1MB), $env:LLMW_BACKEND)
Get-ChildItem $Dist -File | Where-Object { $_.Name -like "$App-$Version-*" } |
  ForEach-Object { Write-Host ("   {0}  {1:N0} MB" -f $_.Name, ($_.Length / 1MB)) }
