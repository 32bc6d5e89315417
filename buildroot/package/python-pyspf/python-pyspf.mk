################################################################################
#
# python-pyspf
#
################################################################################

PYTHON_PYSPF_VERSION = 2.0.14
PYTHON_PYSPF_SOURCE = pyspf-$(PYTHON_PYSPF_VERSION).tar.gz
PYTHON_PYSPF_SITE = https://files.pythonhosted.org/packages/source/p/pyspf
PYTHON_PYSPF_SETUP_TYPE = setuptools
PYTHON_PYSPF_LICENSE = Python-2.0

$(eval $(python-package))
