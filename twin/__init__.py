"""The CI twin, shipped as data (installed as `criobe_verify.twin`) so that
`criobe-verify --stack twin` works from an installed wheel. The suite reads these files
(compose files, image sources) and never imports them; this file only makes the folder a
package that importlib.resources can find."""
