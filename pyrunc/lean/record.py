"""A minimal stand-in for @dataclass: __init__, __repr__, __eq__ (and
frozenness) from the class annotations. The dataclasses module imports
inspect and costs about 10 ms of every `create`, which is a fresh process."""

_MISSING = object()


class field:  # noqa: N801 - mirrors dataclasses.field
    __slots__ = ("default_factory",)

    def __init__(self, *, default_factory):
        self.default_factory = default_factory


def record(cls=None, *, frozen: bool = False):
    def wrap(cls):
        names = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if name not in names:
                    names.append(name)
        defaults = {}
        for name in names:
            value = next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__), _MISSING)
            if isinstance(value, field):
                defaults[name] = value
                if name in cls.__dict__:
                    delattr(cls, name)
            elif value is not _MISSING:
                defaults[name] = value
        setter = object.__setattr__

        def __init__(self, *args, **kwargs):
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes {len(names)} arguments")
            values = dict(zip(names, args))
            for key, value in kwargs.items():
                if key not in names or key in values:
                    raise TypeError(f"{cls.__name__}() got an unexpected or repeated {key!r}")
                values[key] = value
            for name in names:
                if name not in values:
                    default = defaults.get(name, _MISSING)
                    if default is _MISSING:
                        raise TypeError(f"{cls.__name__}() missing argument {name!r}")
                    values[name] = (default.default_factory() if isinstance(default, field)
                                    else default)
                setter(self, name, values[name])

        def __repr__(self):
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{cls.__name__}({inner})"

        def __eq__(self, other):
            if type(other) is not type(self):
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        cls.__init__, cls.__repr__, cls.__eq__ = __init__, __repr__, __eq__
        if frozen:
            def __setattr__(self, name, value):
                raise AttributeError(f"cannot assign to field {name!r} of frozen {cls.__name__}")

            cls.__setattr__ = __setattr__
            cls.__delattr__ = __setattr__
            cls.__hash__ = lambda self: hash(tuple(getattr(self, n) for n in names))
        else:
            cls.__hash__ = None
        return cls

    return wrap(cls) if cls is not None else wrap
