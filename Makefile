# mobq — developer entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mobq-installed
DEMO_OUT ?= exports/demo-qwen3-tiny-8da4w-ctx256

.PHONY: help setup demo test test-fast wheel-check lint format clean
.PHONY: android-core-test android-engine-compile android-bundle ios-bundle

help:
	@echo "make setup  - create .venv with the pinned toolchain (torch 2.13.0 CPU, executorch 1.5.1, torchao 0.18.0)"
	@echo "make demo   - build a tiny bundled model offline, export, verify, run and benchmark it"
	@echo "make test   - the whole test suite, with the wheel check"
	@echo "make wheel-check - build the wheel, install it non-editable in a fresh venv, run it from outside the checkout"
	@echo "make lint   - ruff"
	@echo "make android-core-test - compile and unit-test the Android app's Kotlin core (kotlinc + JUnit), compile its engine layer against ExecuTorch API stubs"
	@echo "make android-bundle / ios-bundle - copy the demo export into the sample apps"

setup: $(STAMP)

# torch first, pinned: installing it through the project would let pip pick a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,sweep]'
	touch $@

demo: setup
	$(BIN)/mobq demo --out $(DEMO_OUT)

# Two workers, one test file each at a time (module fixtures stay in one process); the
# run-wide models and exports are built once and shared (tests/conftest.py build_once).
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

test: setup android-core-test wheel-check
	$(PYTEST)

# What `pip install mobq` gives a user: packaged recipes, the console script, a tiny export.
wheel-check: setup
	.ci/wheel-check $(BIN)/python

test-fast: setup
	$(PYTEST) -m "not slow"

lint: setup
	$(BIN)/ruff check toolchain tests bench
	$(BIN)/ruff format --check toolchain tests bench

format: setup
	$(BIN)/ruff format toolchain tests bench
	$(BIN)/ruff check --fix toolchain tests bench

# ---------------------------------------------------------------- sample apps
# The Android app's pure-Kotlin core is compiled with kotlinc and tested with JUnit here (Gradle
# cannot fetch its plugins offline). The tools come from npm (kotlin-compiler) and Debian
# (junit4, hamcrest, Android's own org.json) and are unpacked into build/tools, never installed
# system-wide, so a fresh clone gets them from `make android-core-test` alone.
TOOLS          := build/tools
KOTLIN_VERSION := 2.4.20
KOTLIN_HOME    := $(TOOLS)/kotlin-$(KOTLIN_VERSION)
KOTLINC        := $(KOTLIN_HOME)/bin/kotlinc
JARS           := $(TOOLS)/jars
JAR_DEBS       := junit4 libhamcrest-java libandroid-json-java
CORE_DIR       := android_app/core
CORE_OUT       := build/android-core
CORE_SRC       := $(shell find $(CORE_DIR)/src/main -name '*.kt' 2>/dev/null)
CORE_TEST_SRC  := $(shell find $(CORE_DIR)/src/test -name '*.kt' 2>/dev/null)
CORE_TESTS     := $(subst /,.,$(patsubst $(CORE_DIR)/src/test/kotlin/%.kt,%,$(filter %Test.kt,$(CORE_TEST_SRC))))
CORE_CP        := $(JARS)/android-json.jar
TEST_LIBS      := $(CORE_OUT)/core.jar:$(CORE_CP):$(JARS)/junit4.jar:$(JARS)/hamcrest.jar:$(KOTLIN_HOME)/lib/kotlin-stdlib.jar:$(KOTLIN_HOME)/lib/kotlin-test.jar:$(KOTLIN_HOME)/lib/kotlin-test-junit.jar

$(KOTLINC):
	rm -rf $(KOTLIN_HOME).part && mkdir -p $(KOTLIN_HOME).part
	cd $(KOTLIN_HOME).part && npm pack --silent kotlin-compiler@$(KOTLIN_VERSION) >/dev/null
	tar -xzf $(KOTLIN_HOME).part/kotlin-compiler-$(KOTLIN_VERSION).tgz -C $(KOTLIN_HOME).part --strip-components=1
	rm -f $(KOTLIN_HOME).part/kotlin-compiler-$(KOTLIN_VERSION).tgz && chmod +x $(KOTLIN_HOME).part/bin/*
	rm -rf $(KOTLIN_HOME) && mv $(KOTLIN_HOME).part $(KOTLIN_HOME)

# apt-get download needs no root and touches nothing outside the current directory.
$(JARS)/.stamp:
	rm -rf $(JARS).part && mkdir -p $(JARS).part/debs
	cd $(JARS).part/debs && { apt-get download $(JAR_DEBS) 2>/dev/null || { apt-get update -qq && apt-get download $(JAR_DEBS); }; }
	for deb in $(JARS).part/debs/*.deb; do dpkg-deb -x $$deb $(JARS).part/root; done
	cp -L $(JARS).part/root/usr/share/java/junit4.jar $(JARS).part/junit4.jar
	cp -L $(JARS).part/root/usr/share/java/hamcrest.jar $(JARS).part/hamcrest.jar
	cp -L $(JARS).part/root/usr/share/java/com.android.json.jar $(JARS).part/android-json.jar
	rm -rf $(JARS).part/debs $(JARS).part/root && touch $(JARS).part/.stamp
	rm -rf $(JARS) && mv $(JARS).part $(JARS)

$(CORE_OUT)/core.jar: $(KOTLINC) $(JARS)/.stamp $(CORE_SRC)
	mkdir -p $(CORE_OUT)
	$(KOTLINC) -jvm-target 17 -cp $(CORE_CP) -d $@.part.jar $(CORE_SRC) && mv $@.part.jar $@

$(CORE_OUT)/core-tests.jar: $(CORE_OUT)/core.jar $(CORE_TEST_SRC)
	$(KOTLINC) -jvm-target 17 -cp $(TEST_LIBS) -d $@.part.jar $(CORE_TEST_SRC) && mv $@.part.jar $@

# The app's engine layer (the only code that calls ExecuTorch) compiled against stubs of
# ExecuTorch's 1.5 Android API (android_app/executorch-stubs: signatures, no behaviour) and
# the core, warnings as errors: a changed or deprecated ExecuTorch call fails `make test`.
# The Android framework (android.jar) is not reachable here; the rest of the app is not compiled.
STUBS_SRC      := $(shell find android_app/executorch-stubs/src -name '*.kt' 2>/dev/null)
ENGINE_SRC     := $(addprefix android_app/app/src/main/kotlin/dev/mobq/app/,Engine.kt InstalledModel.kt)
ENGINE_OUT     := build/android-engine
ENGINE_JAR     := $(ENGINE_OUT)/engine.jar
ENGINE_KOTLINC  = $(KOTLINC) -jvm-target 17 -Werror -cp $(ENGINE_OUT)/executorch-stubs.jar:$(CORE_OUT)/core.jar:$(CORE_CP)

$(ENGINE_OUT)/executorch-stubs.jar: $(KOTLINC) $(STUBS_SRC)
	mkdir -p $(ENGINE_OUT)
	$(KOTLINC) -jvm-target 17 -d $@.part.jar $(STUBS_SRC) && mv $@.part.jar $@

$(ENGINE_OUT)/engine.jar: $(ENGINE_OUT)/executorch-stubs.jar $(CORE_OUT)/core.jar $(ENGINE_SRC)
	$(ENGINE_KOTLINC) -d $@.part.jar $(ENGINE_SRC) && mv $@.part.jar $@

# Always compiles: tests/test_android_engine.py passes ENGINE_SRC (deliberate mismatches) and ENGINE_JAR.
android-engine-compile: $(ENGINE_OUT)/executorch-stubs.jar $(CORE_OUT)/core.jar
	$(ENGINE_KOTLINC) -d $(ENGINE_JAR) $(ENGINE_SRC)

# A jar appears only once kotlinc succeeded, so a failed compile is redone on the next run.
android-core-test: $(CORE_OUT)/core-tests.jar $(ENGINE_OUT)/engine.jar
	java -Dmobq.golden=docs/schema/examples -cp $(CORE_OUT)/core-tests.jar:$(TEST_LIBS) org.junit.runner.JUnitCore $(CORE_TESTS)

# Copy the demo export (built offline when absent) into each app; `mobq bundle --help` for more.
$(DEMO_OUT)/manifest.json: | setup
	$(BIN)/mobq demo --out $(DEMO_OUT)

android-bundle: setup $(DEMO_OUT)/manifest.json
	$(BIN)/mobq bundle android $(DEMO_OUT) --force

ios-bundle: setup $(DEMO_OUT)/manifest.json
	$(BIN)/mobq bundle ios $(DEMO_OUT) --force

clean:
	rm -rf exports build .pytest_cache
