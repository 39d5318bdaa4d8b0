; Inno Setup 6.3+ script for LLM Workbench: a per-user install (no administrator rights).
;
;   iscc /DAppVersion=0.1.0 /DSourceDir=C:\...\dist\llm-workbench /DOutputDir=C:\...\dist
;        /DIconFile=C:\...\build\icons\llm-workbench.ico packaging\windows\llm-workbench.iss
;
; packaging\build_windows.ps1 passes these. The result installs the PyInstaller one-folder
; bundle into %LOCALAPPDATA%\Programs\LLM Workbench, adds a Start-menu entry (and, if asked,
; a desktop shortcut) and registers an uninstaller under Settings > Apps. Uninstalling leaves
; the user's models, settings and chat history (in %LOCALAPPDATA%\llm-workbench) in place.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\llm-workbench"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\icons\llm-workbench.ico"
#endif

#define AppName "LLM Workbench"
#define AppExe "llm-workbench.exe"

[Setup]
; The AppId identifies the app across versions (upgrades replace, the uninstaller finds it):
; never change it.
AppId={{BDAA70B0-07FF-483E-AAE9-DBBFD3AEBC41}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppName}
VersionInfoVersion={#AppVersion}
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
DisableDirPage=auto
OutputDir={#OutputDir}
OutputBaseFilename=llm-workbench-{#AppVersion}-windows-x64-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Close a running copy (and its worker) before replacing its files.
CloseApplications=yes
RestartApplications=no

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade must not keep libraries the new version no longer ships (a CPU build replacing a
; CUDA one, say): clear the bundle's folder first.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
Type: filesandordirs; Name: "{app}\_internal"
