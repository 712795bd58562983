using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.ChatTemplates;

/// <summary>The output of a render: the text and the character spans that <c>{% generation %}</c> blocks produced.</summary>
public sealed record JinjaRendering(string Text, IReadOnlyList<Range> GenerationSpans);

/// <summary>
/// A parsed Jinja2 template, rendered as transformers renders chat templates (an immutable sandbox with trim_blocks,
/// lstrip_blocks, loop controls and the <c>{% generation %}</c> extension; Python semantics for values and printing).
/// Covers what chat templates use: if/for (with loop.*, else, filters, break/continue), set (incl. namespaces and
/// blocks), macros, filter blocks, the usual filters, tests, and str/dict methods. Parsing or rendering errors name
/// the template's line and column.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _body;
    private readonly string _source;

    private JinjaTemplate(List<Node> body, string source)
    {
        _body = body;
        _source = source;
    }

    /// <summary>Parses a template; a syntax error or unsupported construct throws <see cref="JinjaException"/>.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var body = JinjaParser.Parse(source, out var normalized);
        return new JinjaTemplate(body, normalized);
    }

    /// <summary>Renders with variables given as JSON (objects become dicts, arrays lists).</summary>
    public JinjaRendering Render(IReadOnlyDictionary<string, JsonNode?> variables) =>
        Render(variables.ToDictionary(p => p.Key, p => JinjaValues.FromJson(p.Value)));

    internal JinjaRendering Render(Dictionary<string, object?> variables)
    {
        var renderer = new JinjaRenderer(_source);
        var scope = new Scope(null);
        foreach (var (name, value) in variables)
            scope.Set(name, value);
        var output = new StringBuilder();
        renderer.RenderNodes(_body, scope, output, isMainOutput: true);
        return new JinjaRendering(output.ToString(), renderer.GenerationSpans);
    }
}

internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

    public Scope? Parent => parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s._values.TryGetValue(name, out value))
                return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _values[name] = value;
}

internal sealed class LoopControlException(bool isBreak) : Exception
{
    public bool IsBreak { get; } = isBreak;
}

internal sealed partial class JinjaRenderer(string source)
{
    private int _generationDepth;

    public List<Range> GenerationSpans { get; } = [];

    private JinjaException Error(string message, int offset, Exception? inner = null)
    {
        var (line, column) = JinjaLexer.Locate(source, offset);
        return new JinjaException(message, line, column, inner);
    }

    public void RenderNodes(List<Node> nodes, Scope scope, StringBuilder output, bool isMainOutput)
    {
        foreach (var node in nodes)
            RenderNode(node, scope, output, isMainOutput);
    }

    private void RenderNode(Node node, Scope scope, StringBuilder output, bool isMainOutput)
    {
        switch (node)
        {
            case TextNode text:
                output.Append(text.Text);
                break;
            case OutputNode print:
                output.Append(JinjaValues.ToStr(Evaluate(print.Value, scope)));
                break;
            case IfNode ifNode:
                foreach (var (test, body) in ifNode.Branches)
                    if (JinjaValues.IsTruthy(Evaluate(test, scope)))
                    {
                        RenderNodes(body, scope, output, isMainOutput);
                        return;
                    }
                if (ifNode.Else is { } elseBody)
                    RenderNodes(elseBody, scope, output, isMainOutput);
                break;
            case ForNode forNode:
                RenderFor(forNode, scope, output, isMainOutput);
                break;
            case SetNode set:
                Assign(set.Target, Evaluate(set.Value, scope), scope);
                break;
            case SetBlockNode setBlock:
            {
                var captured = new StringBuilder();
                RenderNodes(setBlock.Body, scope, captured, false);
                object? value = captured.ToString();
                foreach (var (name, args, kwargs, offset) in setBlock.Filters)
                    value = ApplyFilter(name, value, args.Select(a => Evaluate(a, scope)).ToList(),
                        kwargs.Select(k => (k.Item1, Evaluate(k.Item2, scope))).ToList(), offset, scope);
                Assign(setBlock.Target, value, scope);
                break;
            }
            case MacroNode macro:
                scope.Set(macro.Name, MakeMacro(macro, scope));
                break;
            case FilterBlockNode filterBlock:
            {
                var captured = new StringBuilder();
                RenderNodes(filterBlock.Body, scope, captured, false);
                object? value = captured.ToString();
                foreach (var (name, args, kwargs, offset) in filterBlock.Filters)
                    value = ApplyFilter(name, value, args.Select(a => Evaluate(a, scope)).ToList(),
                        kwargs.Select(k => (k.Item1, Evaluate(k.Item2, scope))).ToList(), offset, scope);
                output.Append(JinjaValues.ToStr(value));
                break;
            }
            case GenerationNode generation:
            {
                var start = output.Length;
                _generationDepth++;
                RenderNodes(generation.Body, scope, output, isMainOutput);
                _generationDepth--;
                if (isMainOutput && _generationDepth == 0)
                    GenerationSpans.Add(start..output.Length);
                break;
            }
            case BreakNode:
                throw new LoopControlException(true);
            case ContinueNode:
                throw new LoopControlException(false);
            default:
                throw Error($"unsupported node {node.GetType().Name}", node.Offset);
        }
    }

    private void RenderFor(ForNode node, Scope scope, StringBuilder output, bool isMainOutput)
    {
        var iterable = Evaluate(node.Iterable, scope);
        var items = Iterate(iterable, node.Iterable.Offset);
        if (node.Filter is { } filter)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var filterScope = new Scope(scope);
                Assign(node.Target, item, filterScope);
                if (JinjaValues.IsTruthy(Evaluate(filter, filterScope)))
                    kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (node.Else is { } elseBody)
                RenderNodes(elseBody, scope, output, isMainOutput);
            return;
        }
        for (var i = 0; i < items.Count; i++)
        {
            var loopScope = new Scope(scope);
            loopScope.Set("loop", MakeLoop(items, i));
            Assign(node.Target, items[i], loopScope);
            try
            {
                RenderNodes(node.Body, loopScope, output, isMainOutput);
            }
            catch (LoopControlException control)
            {
                if (control.IsBreak)
                    break;
            }
        }
    }

    private static OrderedDictionary<string, object?> MakeLoop(List<object?> items, int i)
    {
        var loop = new OrderedDictionary<string, object?>(StringComparer.Ordinal)
        {
            ["index"] = (long)(i + 1),
            ["index0"] = (long)i,
            ["revindex"] = (long)(items.Count - i),
            ["revindex0"] = (long)(items.Count - i - 1),
            ["first"] = i == 0,
            ["last"] = i == items.Count - 1,
            ["length"] = (long)items.Count,
            ["previtem"] = i > 0 ? items[i - 1] : Undefined.Instance,
            ["nextitem"] = i + 1 < items.Count ? items[i + 1] : Undefined.Instance,
            ["depth"] = 1L,
            ["depth0"] = 0L,
        };
        loop["cycle"] = new JinjaCallable("cycle", (args, _) =>
            args.Count == 0 ? throw new InvalidOperationException("loop.cycle needs at least one argument") : args[i % args.Count]);
        return loop;
    }

    private JinjaCallable MakeMacro(MacroNode macro, Scope definitionScope) =>
        new(macro.Name, (args, kwargs) =>
        {
            var scope = new Scope(definitionScope);
            if (args.Count > macro.Parameters.Count)
                throw Error($"macro '{macro.Name}' takes {macro.Parameters.Count} arguments, got {args.Count}", macro.Offset);
            var bound = new HashSet<string>();
            for (var i = 0; i < args.Count; i++)
            {
                scope.Set(macro.Parameters[i].Name, args[i]);
                bound.Add(macro.Parameters[i].Name);
            }
            foreach (var (name, value) in kwargs)
            {
                if (!macro.Parameters.Any(p => p.Name == name))
                    throw Error($"macro '{macro.Name}' has no parameter '{name}'", macro.Offset);
                scope.Set(name, value);
                bound.Add(name);
            }
            foreach (var (name, defaultValue) in macro.Parameters)
                if (!bound.Contains(name))
                    scope.Set(name, defaultValue is null ? Undefined.Instance : Evaluate(defaultValue, scope));
            var output = new StringBuilder();
            RenderNodes(macro.Body, scope, output, false);
            return output.ToString();
        });

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr name:
                scope.Set(name.Name, value);
                break;
            case AttributeExpr { Target: NameExpr nsName } attribute:
                if (!scope.TryGet(nsName.Name, out var ns) || ns is not JinjaNamespace jinjaNamespace)
                    throw Error($"cannot assign attribute on non-namespace object '{nsName.Name}'", target.Offset);
                jinjaNamespace.Values[attribute.Name] = value;
                break;
            case ListExpr tuple:
            {
                var items = Iterate(value, target.Offset);
                if (items.Count != tuple.Items.Count)
                    throw Error($"cannot unpack {items.Count} values into {tuple.Items.Count} names", target.Offset);
                for (var i = 0; i < items.Count; i++)
                    Assign(tuple.Items[i], items[i], scope);
                break;
            }
            default:
                throw Error("cannot assign to this expression", target.Offset);
        }
    }

    public List<object?> Iterate(object? value, int offset) => value switch
    {
        Undefined => [],
        List<object?> list => [.. list],
        OrderedDictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => StringChars(s),
        _ => throw Error($"'{JinjaValues.TypeName(value)}' object is not iterable", offset),
    };

    private static List<object?> StringChars(string s)
    {
        var chars = new List<object?>();
        for (var i = 0; i < s.Length; i++)
        {
            var length = char.IsSurrogatePair(s, i) ? 2 : 1;
            chars.Add(s.Substring(i, length));
            i += length - 1;
        }
        return chars;
    }

    public object? Evaluate(Expr expr, Scope scope)
    {
        try
        {
            return EvaluateCore(expr, scope);
        }
        catch (Exception e) when (e is not (JinjaException or TemplateRaisedException or LoopControlException))
        {
            throw Error(e.Message, expr.Offset, e);
        }
    }

    private object? EvaluateCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr name:
                if (scope.TryGet(name.Name, out var value))
                    return value;
                return Globals.TryGetValue(name.Name, out var global) ? global : Undefined.Instance;
            case ListExpr list:
            {
                var items = list.Items.Select(i => Evaluate(i, scope)).ToList();
                return list.IsTuple ? new JinjaTuple(items) : items;
            }
            case DictExpr dict:
            {
                var result = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in dict.Items)
                    result[Evaluate(k, scope) is string key ? key : throw Error("dict keys must be strings", k.Offset)] = Evaluate(v, scope);
                return result;
            }
            case AttributeExpr attribute:
                return GetAttribute(Evaluate(attribute.Target, scope), attribute.Name, attribute.Offset);
            case ItemExpr item:
                return GetItem(Evaluate(item.Target, scope), Evaluate(item.Key, scope), item.Offset);
            case SliceExpr slice:
                return Slice(Evaluate(slice.Target, scope), slice.Start is null ? null : Evaluate(slice.Start, scope),
                    slice.Stop is null ? null : Evaluate(slice.Stop, scope), slice.Step is null ? null : Evaluate(slice.Step, scope), slice.Offset);
            case CallExpr call:
            {
                var callee = Evaluate(call.Callee, scope);
                var args = call.Args.Select(a => Evaluate(a, scope)).ToList();
                var kwargs = call.Kwargs.Select(k => (k.Name, Evaluate(k.Value, scope))).ToList();
                if (callee is JinjaCallable callable)
                    return callable.Invoke(args, kwargs);
                var what = call.Callee switch
                {
                    NameExpr n => $"'{n.Name}'",
                    AttributeExpr a => $"'{a.Name}'",
                    _ => "the expression",
                };
                throw Error(callee is Undefined ? $"{what} is undefined and cannot be called" : $"{what} ({JinjaValues.TypeName(callee)}) is not callable", call.Offset);
            }
            case FilterExpr filter:
            {
                var value0 = Evaluate(filter.Value, scope);
                return ApplyFilter(filter.Name, value0, filter.Args.Select(a => Evaluate(a, scope)).ToList(),
                    filter.Kwargs.Select(k => (k.Name, Evaluate(k.Value, scope))).ToList(), filter.Offset, scope);
            }
            case TestExpr test:
            {
                var result = ApplyTest(test.Name, Evaluate(test.Value, scope), test.Args.Select(a => Evaluate(a, scope)).ToList(), test.Offset);
                return test.Negated ? !result : result;
            }
            case UnaryExpr unary:
            {
                var operand = Evaluate(unary.Operand, scope);
                return unary.Op switch
                {
                    "not" => !JinjaValues.IsTruthy(operand),
                    "-" => operand switch
                    {
                        long l => (object)(-l),
                        double d => -d,
                        bool b => b ? -1L : 0L,
                        _ => throw Error($"bad operand type for unary -: '{JinjaValues.TypeName(operand)}'", unary.Offset),
                    },
                    _ => JinjaValues.IsNumber(operand) ? operand is bool b2 ? (b2 ? 1L : 0L) : operand
                        : throw Error($"bad operand type for unary +: '{JinjaValues.TypeName(operand)}'", unary.Offset),
                };
            }
            case BinaryExpr { Op: "and" } and:
            {
                var left = Evaluate(and.Left, scope);
                return JinjaValues.IsTruthy(left) ? Evaluate(and.Right, scope) : left;
            }
            case BinaryExpr { Op: "or" } or:
            {
                var left = Evaluate(or.Left, scope);
                return JinjaValues.IsTruthy(left) ? left : Evaluate(or.Right, scope);
            }
            case BinaryExpr binary:
                return BinaryOperation(binary.Op, Evaluate(binary.Left, scope), Evaluate(binary.Right, scope), binary.Offset);
            case CompareExpr compare:
            {
                var left = Evaluate(compare.First, scope);
                foreach (var (op, operandExpr) in compare.Rest)
                {
                    var right = Evaluate(operandExpr, scope);
                    if (!Compare(op, left, right, operandExpr.Offset))
                        return false;
                    left = right;
                }
                return true;
            }
            case ConditionalExpr conditional:
                return JinjaValues.IsTruthy(Evaluate(conditional.Test, scope))
                    ? Evaluate(conditional.Then, scope)
                    : conditional.Else is null ? Undefined.Instance : Evaluate(conditional.Else, scope);
            default:
                throw Error($"unsupported expression {expr.GetType().Name}", expr.Offset);
        }
    }

    private object? BinaryOperation(string op, object? a, object? b, int offset)
    {
        if (op == "~")
            return JinjaValues.ToStr(a) + JinjaValues.ToStr(b);
        if (a is Undefined || b is Undefined)
            throw Error($"unsupported operand: an undefined value in '{op}'", offset);
        switch (op)
        {
            case "+":
                if (a is string sa && b is string sb) return sa + sb;
                if (a is List<object?> la && b is List<object?> lb)
                    return a is JinjaTuple && b is JinjaTuple ? new JinjaTuple([.. la, .. lb]) : new List<object?>([.. la, .. lb]);
                break;
            case "*":
                if (a is string s1 && b is long n1) return string.Concat(Enumerable.Repeat(s1, (int)Math.Max(0, n1)));
                if (a is long n2 && b is string s2) return string.Concat(Enumerable.Repeat(s2, (int)Math.Max(0, n2)));
                if (a is List<object?> l1 && b is long n3) return Enumerable.Repeat(l1, (int)Math.Max(0, n3)).SelectMany(x => x).ToList();
                break;
        }
        if (!JinjaValues.IsNumber(a) || !JinjaValues.IsNumber(b))
            throw Error($"unsupported operand types for {op}: '{JinjaValues.TypeName(a)}' and '{JinjaValues.TypeName(b)}'", offset);
        var integers = a is not double && b is not double;
        if (integers)
        {
            long x = JinjaValues.ToLong(a), y = JinjaValues.ToLong(b);
            switch (op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "/": return y == 0 ? throw Error("division by zero", offset) : (double)x / y;
                case "//": return y == 0 ? throw Error("integer division by zero", offset) : (long)Math.Floor((double)x / y);
                case "%":
                    if (y == 0) throw Error("integer modulo by zero", offset);
                    var m = x % y;
                    return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                case "**": return y >= 0 ? (object)(long)Math.Pow(x, y) : Math.Pow(x, y);
            }
        }
        double p = JinjaValues.ToDouble(a), q = JinjaValues.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw Error("float division by zero", offset) : p / q,
            "//" => q == 0 ? throw Error("float floor division by zero", offset) : Math.Floor(p / q),
            "%" => q == 0 ? throw Error("float modulo", offset) : p - q * Math.Floor(p / q),
            "**" => Math.Pow(p, q),
            _ => throw Error($"unknown operator {op}", offset),
        };
    }

    private bool Compare(string op, object? a, object? b, int offset)
    {
        switch (op)
        {
            case "==": return JinjaValues.PyEquals(a, b);
            case "!=": return !JinjaValues.PyEquals(a, b);
            case "in": return Contains(b, a, offset);
            case "notin": return !Contains(b, a, offset);
        }
        int order;
        if (JinjaValues.IsNumber(a) && JinjaValues.IsNumber(b))
            order = JinjaValues.ToDouble(a).CompareTo(JinjaValues.ToDouble(b));
        else if (a is string sa && b is string sb)
            order = string.CompareOrdinal(sa, sb);
        else
            throw Error($"'{op}' not supported between '{JinjaValues.TypeName(a)}' and '{JinjaValues.TypeName(b)}'", offset);
        return op switch
        {
            "<" => order < 0,
            ">" => order > 0,
            "<=" => order <= 0,
            _ => order >= 0,
        };
    }

    private bool Contains(object? container, object? item, int offset) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw Error($"'in <string>' requires string as left operand, not {JinjaValues.TypeName(item)}", offset),
        List<object?> list => list.Any(x => JinjaValues.PyEquals(x, item)),
        OrderedDictionary<string, object?> dict => item is string key && dict.ContainsKey(key),
        JinjaNamespace ns => item is string key2 && ns.Values.ContainsKey(key2),
        _ => throw Error($"argument of type '{JinjaValues.TypeName(container)}' is not iterable", offset),
    };

    /// <summary><c>obj.name</c>: Python attribute first (methods), then item, as Jinja's getattr does.</summary>
    private object? GetAttribute(object? target, string name, int offset)
    {
        switch (target)
        {
            case Undefined:
                throw Error($"cannot read attribute '{name}' of an undefined value", offset);
            case null:
                throw Error($"'None' has no attribute '{name}'", offset);
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out var v) ? v : Undefined.Instance;
        }
        if (Methods.Get(target, name) is { } method)
            return method;
        return target is OrderedDictionary<string, object?> dict && dict.TryGetValue(name, out var value) ? value : Undefined.Instance;
    }

    /// <summary><c>obj[key]</c>: item first, then attribute.</summary>
    private object? GetItem(object? target, object? key, int offset)
    {
        switch (target)
        {
            case Undefined:
                throw Error($"cannot read item {JinjaValues.Repr(key)} of an undefined value", offset);
            case null:
                throw Error($"'None' object is not subscriptable", offset);
            case OrderedDictionary<string, object?> dict:
                if (key is string k && dict.TryGetValue(k, out var value)) return value;
                break;
            case JinjaNamespace ns:
                if (key is string nk && ns.Values.TryGetValue(nk, out var nsValue)) return nsValue;
                return Undefined.Instance;
            case List<object?> list when key is long or bool:
            {
                var index = JinjaValues.ToLong(key);
                if (index < 0) index += list.Count;
                return index >= 0 && index < list.Count ? list[(int)index] : Undefined.Instance;
            }
            case string s when key is long or bool:
            {
                var index = JinjaValues.ToLong(key);
                if (index < 0) index += s.Length;
                return index >= 0 && index < s.Length ? s[(int)index].ToString() : Undefined.Instance;
            }
        }
        return key is string name && Methods.Get(target, name) is { } method ? method : Undefined.Instance;
    }

    private object? Slice(object? target, object? start, object? stop, object? step, int offset)
    {
        var length = target switch
        {
            List<object?> l => l.Count,
            string s => s.Length,
            _ => throw Error($"'{JinjaValues.TypeName(target)}' object cannot be sliced", offset),
        };
        var indices = SliceIndices(length, start, stop, step, offset);
        return target switch
        {
            JinjaTuple t => new JinjaTuple(indices.Select(i => t[i]).ToList()),
            List<object?> l => indices.Select(i => l[i]).ToList(),
            _ => string.Concat(indices.Select(i => ((string)target)[i])),
        };
    }

    private List<int> SliceIndices(int length, object? start, object? stop, object? step, int offset)
    {
        long Opt(object? v) => v is long or bool ? JinjaValues.ToLong(v) : throw Error("slice indices must be integers or None", offset);
        var stepValue = step is null ? 1 : Opt(step);
        if (stepValue == 0)
            throw Error("slice step cannot be zero", offset);
        long Clamp(object? v, long defaultValue, long low, long high)
        {
            if (v is null) return defaultValue;
            var x = Opt(v);
            if (x < 0) x += length;
            return Math.Clamp(x, low, high);
        }
        var result = new List<int>();
        if (stepValue > 0)
        {
            long i = Clamp(start, 0, 0, length), end = Clamp(stop, length, 0, length);
            for (; i < end; i += stepValue) result.Add((int)i);
        }
        else
        {
            long i = Clamp(start, length - 1, -1, length - 1), end = Clamp(stop, -1, -1, length - 1);
            for (; i > end; i += stepValue) result.Add((int)i);
        }
        return result;
    }

    private static readonly Dictionary<string, object?> Globals = new(StringComparer.Ordinal)
    {
        ["range"] = new JinjaCallable("range", (args, _) =>
        {
            long start = 0, stop, step = 1;
            switch (args.Count)
            {
                case 1: stop = JinjaValues.ToLong(args[0]); break;
                case 2: start = JinjaValues.ToLong(args[0]); stop = JinjaValues.ToLong(args[1]); break;
                case 3: start = JinjaValues.ToLong(args[0]); stop = JinjaValues.ToLong(args[1]); step = JinjaValues.ToLong(args[2]); break;
                default: throw new InvalidOperationException("range expects 1 to 3 arguments");
            }
            if (step == 0) throw new InvalidOperationException("range() arg 3 must not be zero");
            var list = new List<object?>();
            for (var i = start; step > 0 ? i < stop : i > stop; i += step)
                list.Add(i);
            return list;
        }),
        ["namespace"] = new JinjaCallable("namespace", (args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            foreach (var arg in args)
                if (arg is OrderedDictionary<string, object?> d)
                    foreach (var (k, v) in d) ns.Values[k] = v;
                else throw new InvalidOperationException("namespace() takes keyword arguments or dicts");
            foreach (var (k, v) in kwargs) ns.Values[k] = v;
            return ns;
        }),
        ["dict"] = new JinjaCallable("dict", (args, kwargs) =>
        {
            var d = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
            foreach (var arg in args)
                if (arg is OrderedDictionary<string, object?> source)
                    foreach (var (k, v) in source) d[k] = v;
                else throw new InvalidOperationException("dict() takes keyword arguments or a dict");
            foreach (var (k, v) in kwargs) d[k] = v;
            return d;
        }),
        ["raise_exception"] = new JinjaCallable("raise_exception", (args, _) =>
            throw new TemplateRaisedException(args.Count > 0 ? JinjaValues.ToStr(args[0]) : "raise_exception called")),
        ["strftime_now"] = new JinjaCallable("strftime_now", (args, _) =>
            Strftime(DateTime.Now, args.Count > 0 && args[0] is string format ? format : throw new InvalidOperationException("strftime_now expects a format string"))),
    };

    /// <summary>Python's strftime for the directives date-aware templates use (C locale).</summary>
    internal static string Strftime(DateTime time, string format)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var c = format[++i];
            sb.Append(c switch
            {
                'd' => time.Day.ToString("00", inv),
                'm' => time.Month.ToString("00", inv),
                'Y' => time.Year.ToString(inv),
                'y' => (time.Year % 100).ToString("00", inv),
                'B' => time.ToString("MMMM", inv),
                'b' => time.ToString("MMM", inv),
                'A' => time.ToString("dddd", inv),
                'a' => time.ToString("ddd", inv),
                'H' => time.Hour.ToString("00", inv),
                'I' => ((time.Hour + 11) % 12 + 1).ToString("00", inv),
                'M' => time.Minute.ToString("00", inv),
                'S' => time.Second.ToString("00", inv),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => time.DayOfYear.ToString("000", inv),
                '-' when i + 1 < format.Length && format[i + 1] == 'd' => (i++ >= 0 ? time.Day : 0).ToString(inv),
                '%' => "%",
                _ => throw new InvalidOperationException($"strftime_now: unsupported directive %{c}"),
            });
        }
        return sb.ToString();
    }
}
