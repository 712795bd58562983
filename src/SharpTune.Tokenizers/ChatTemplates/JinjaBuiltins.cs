using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Tokenizers.ChatTemplates;

internal sealed partial class JinjaRenderer
{
    private static object? Arg(List<object?> args, List<(string Name, object? Value)> kwargs, int position, string name, object? defaultValue)
    {
        foreach (var (k, v) in kwargs)
            if (k == name) return v;
        return position < args.Count ? args[position] : defaultValue;
    }

    private object? ApplyFilter(string name, object? value, List<object?> args, List<(string Name, object? Value)> kwargs, int offset, Scope scope)
    {
        try
        {
            return FilterCore(name, value, args, kwargs, offset, scope);
        }
        catch (Exception e) when (e is not (JinjaException or TemplateRaisedException))
        {
            throw Error($"filter '{name}': {e.Message}", offset, e);
        }
    }

    private object? FilterCore(string name, object? value, List<object?> args, List<(string Name, object? Value)> kwargs, int offset, Scope scope)
    {
        string Str() => value is string s ? s : JinjaValues.ToStr(value);
        switch (name)
        {
            case "default" or "d":
            {
                var fallback = Arg(args, kwargs, 0, "default_value", "");
                var boolean = JinjaValues.IsTruthy(Arg(args, kwargs, 1, "boolean", false));
                return value is Undefined || (boolean && !JinjaValues.IsTruthy(value)) ? fallback : value;
            }
            case "trim":
            {
                var chars = Arg(args, kwargs, 0, "chars", null) as string;
                return PyStrip(Str(), chars, true, true);
            }
            case "length" or "count":
                return value switch
                {
                    string s => (long)new StringInfoLength(s).Length,
                    List<object?> l => (long)l.Count,
                    OrderedDictionary<string, object?> d => (long)d.Count,
                    JinjaNamespace ns => (long)ns.Values.Count,
                    Undefined => 0L,
                    _ => throw new InvalidOperationException($"object of type '{JinjaValues.TypeName(value)}' has no len()"),
                };
            case "tojson":
            {
                var indentValue = Arg(args, kwargs, 0, "indent", null);
                int? indent = indentValue is null ? null : (int)JinjaValues.ToLong(indentValue);
                string? itemSeparator = null, keySeparator = null;
                if (Arg(args, kwargs, 2, "separators", null) is List<object?> { Count: 2 } separators)
                {
                    itemSeparator = (string?)separators[0];
                    keySeparator = (string?)separators[1];
                }
                return JinjaValues.ToJson(value is Undefined ? throw new InvalidOperationException("Object of type Undefined is not JSON serializable") : value,
                    indent, itemSeparator, keySeparator, JinjaValues.IsTruthy(Arg(args, kwargs, 3, "sort_keys", false)),
                    JinjaValues.IsTruthy(Arg(args, kwargs, 1, "ensure_ascii", false)));
            }
            case "string":
                return JinjaValues.ToStr(value);
            case "safe":
                return value;
            case "escape" or "e" or "forceescape":
                return Str().Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "upper": return Str().ToUpperInvariant();
            case "lower": return Str().ToLowerInvariant();
            case "capitalize":
            {
                var s = Str();
                return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            }
            case "title":
                return string.Concat(WordBeginning().Split(Str()).Where(p => p.Length > 0)
                    .Select(p => char.ToUpperInvariant(p[0]) + p[1..].ToLowerInvariant()));
            case "first":
                return value switch
                {
                    string s => s.Length > 0 ? s[0].ToString() : Undefined.Instance,
                    _ => Iterate(value, offset) is { Count: > 0 } items ? items[0] : Undefined.Instance,
                };
            case "last":
                return Iterate(value, offset) is { Count: > 0 } all ? all[^1] : Undefined.Instance;
            case "join":
            {
                var separator = JinjaValues.ToStr(Arg(args, kwargs, 0, "d", ""));
                var attribute = Arg(args, kwargs, 1, "attribute", null);
                var items = Iterate(value, offset);
                if (attribute is not null)
                    items = items.Select(i => GetItemOrAttribute(i, attribute, offset)).ToList();
                return string.Join(separator, items.Select(JinjaValues.ToStr));
            }
            case "list":
                return Iterate(value, offset);
            case "items":
                return value switch
                {
                    OrderedDictionary<string, object?> d => d.Select(p => (object?)new JinjaTuple([p.Key, p.Value])).ToList(),
                    Undefined => new List<object?>(),
                    _ => throw new InvalidOperationException($"items expects a mapping, got {JinjaValues.TypeName(value)}"),
                };
            case "dictsort":
            {
                if (value is not OrderedDictionary<string, object?> d)
                    throw new InvalidOperationException("dictsort expects a mapping");
                var byValue = Arg(args, kwargs, 1, "by", "key") as string == "value";
                var reverse = JinjaValues.IsTruthy(Arg(args, kwargs, 2, "reverse", false));
                var pairs = d.Select(p => (object?)new JinjaTuple([p.Key, p.Value])).ToList();
                pairs.Sort((x, y) => ComparePy(((JinjaTuple)x!)[byValue ? 1 : 0], ((JinjaTuple)y!)[byValue ? 1 : 0]));
                if (reverse) pairs.Reverse();
                return pairs;
            }
            case "map":
            {
                var items = Iterate(value, offset);
                if (Arg([], kwargs, 0, "attribute", null) is { } attribute)
                {
                    var fallback = Arg([], kwargs, 0, "default", Undefined.Instance);
                    return items.Select(i => GetItemOrAttribute(i, attribute, offset) is Undefined ? fallback : GetItemOrAttribute(i, attribute, offset)).ToList();
                }
                if (args.Count == 0 || args[0] is not string filterName)
                    throw new InvalidOperationException("map needs a filter name or attribute=");
                return items.Select(i => ApplyFilter(filterName, i, args.Skip(1).ToList(), kwargs, offset, scope)).ToList();
            }
            case "select" or "reject":
            {
                var keep = name == "select";
                return Iterate(value, offset).Where(i => (args.Count == 0 ? JinjaValues.IsTruthy(i)
                    : ApplyTest((string)args[0]!, i, args.Skip(1).ToList(), offset)) == keep).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                var keep = name == "selectattr";
                if (args.Count == 0) throw new InvalidOperationException($"{name} needs an attribute name");
                return Iterate(value, offset).Where(i =>
                {
                    var attributeValue = GetItemOrAttribute(i, args[0], offset);
                    return (args.Count == 1 ? JinjaValues.IsTruthy(attributeValue)
                        : ApplyTest((string)args[1]!, attributeValue, args.Skip(2).ToList(), offset)) == keep;
                }).ToList();
            }
            case "replace":
            {
                var old = JinjaValues.ToStr(args.ElementAtOrDefault(0));
                var replacement = JinjaValues.ToStr(args.ElementAtOrDefault(1));
                var count = args.Count > 2 ? JinjaValues.ToLong(args[2]) : -1;
                return Methods.ReplaceCount(Str(), old, replacement, count);
            }
            case "indent":
            {
                var width = Arg(args, kwargs, 0, "width", 4L);
                var indentText = width is string w ? w : new string(' ', (int)JinjaValues.ToLong(width));
                var first = JinjaValues.IsTruthy(Arg(args, kwargs, 1, "first", false));
                var blank = JinjaValues.IsTruthy(Arg(args, kwargs, 2, "blank", false));
                var lines = Str().Split('\n');
                var sb = new StringBuilder();
                for (var i = 0; i < lines.Length; i++)
                {
                    if (i > 0) sb.Append('\n');
                    if ((i > 0 || first) && (blank || lines[i].Length > 0 && !lines[i].All(JinjaLexer.IsSpace)))
                        sb.Append(indentText);
                    sb.Append(lines[i]);
                }
                return sb.ToString();
            }
            case "int":
                return value switch
                {
                    long l => l,
                    bool b => b ? 1L : 0L,
                    double d => (long)Math.Truncate(d),
                    string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => n,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => (long)Math.Truncate(f),
                    _ => Arg(args, kwargs, 0, "default", 0L),
                };
            case "float":
                return value switch
                {
                    long or double or bool => JinjaValues.ToDouble(value),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
                    _ => Arg(args, kwargs, 0, "default", 0.0),
                };
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double d => Math.Abs(d),
                    _ => throw new InvalidOperationException($"bad operand type for abs(): '{JinjaValues.TypeName(value)}'"),
                };
            case "round":
            {
                var precision = (int)JinjaValues.ToLong(Arg(args, kwargs, 0, "precision", 0L));
                var method = Arg(args, kwargs, 1, "method", "common") as string;
                var factor = Math.Pow(10, precision);
                var x = JinjaValues.ToDouble(value) * factor;
                var rounded = method switch
                {
                    "ceil" => Math.Ceiling(x),
                    "floor" => Math.Floor(x),
                    _ => Math.Round(x, MidpointRounding.AwayFromZero),
                };
                return rounded / factor;
            }
            case "reverse":
                return value switch
                {
                    string s => new string(s.Reverse().ToArray()),
                    _ => Enumerable.Reverse(Iterate(value, offset)).ToList(),
                };
            case "sort":
            {
                var reverse = JinjaValues.IsTruthy(Arg(args, kwargs, 0, "reverse", false));
                var attribute = Arg(args, kwargs, 2, "attribute", null);
                var items = Iterate(value, offset);
                var keyed = items.Select(i => (Item: i, Key: attribute is null ? i : GetItemOrAttribute(i, attribute, offset))).ToList();
                var sorted = keyed.Order(Comparer<(object? Item, object? Key)>.Create((x, y) => ComparePy(x.Key, y.Key))).Select(p => p.Item).ToList();
                if (reverse) sorted.Reverse();
                return sorted;
            }
            case "unique":
            {
                var result = new List<object?>();
                foreach (var item in Iterate(value, offset))
                    if (!result.Any(r => JinjaValues.PyEquals(r, item)))
                        result.Add(item);
                return result;
            }
            case "sum":
            {
                object? total = Arg(args, kwargs, 1, "start", 0L);
                var attribute = Arg(args, kwargs, 0, "attribute", null);
                foreach (var item in Iterate(value, offset))
                    total = BinaryOperation("+", total, attribute is null ? item : GetItemOrAttribute(item, attribute, offset), offset);
                return total;
            }
            case "min" or "max":
            {
                var items = Iterate(value, offset);
                if (items.Count == 0) return Undefined.Instance;
                var best = items[0];
                foreach (var item in items.Skip(1))
                    if (name == "min" ? ComparePy(item, best) < 0 : ComparePy(item, best) > 0)
                        best = item;
                return best;
            }
            case "wordcount":
                return (long)Regex.Matches(Str(), @"\w+").Count;
            case "center":
            {
                var width = (int)JinjaValues.ToLong(Arg(args, kwargs, 0, "width", 80L));
                var s = Str();
                if (s.Length >= width) return s;
                var total = width - s.Length;
                var left = total / 2 + (total & width & 1);
                return new string(' ', left) + s + new string(' ', total - left);
            }
            case "attr":
                return GetAttribute(value, JinjaValues.ToStr(args.ElementAtOrDefault(0)), offset);
            case "batch":
            {
                var size = (int)JinjaValues.ToLong(args.ElementAtOrDefault(0) ?? 1L);
                return Iterate(value, offset).Chunk(size).Select(c => (object?)c.ToList()).ToList();
            }
            default:
                throw Error($"unsupported filter '{name}'", offset);
        }
    }

    private object? GetItemOrAttribute(object? item, object? attribute, int offset)
    {
        if (attribute is string path)
        {
            object? current = item;
            foreach (var part in path.Split('.'))
                current = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                    ? GetItem(current, index, offset) : GetItem(current, part, offset);
            return current;
        }
        return GetItem(item, attribute, offset);
    }

    private int ComparePy(object? a, object? b)
    {
        if (JinjaValues.IsNumber(a) && JinjaValues.IsNumber(b))
            return JinjaValues.ToDouble(a).CompareTo(JinjaValues.ToDouble(b));
        if (a is string x && b is string y)
            return string.CompareOrdinal(x, y);
        if (a is List<object?> la && b is List<object?> lb)
        {
            for (var i = 0; i < Math.Min(la.Count, lb.Count); i++)
                if (ComparePy(la[i], lb[i]) is var c && c != 0)
                    return c;
            return la.Count.CompareTo(lb.Count);
        }
        throw new InvalidOperationException($"'<' not supported between '{JinjaValues.TypeName(a)}' and '{JinjaValues.TypeName(b)}'");
    }

    private bool ApplyTest(string name, object? value, List<object?> args, int offset)
    {
        object? First() => args.Count > 0 ? args[0] : throw Error($"test '{name}' needs an argument", offset);
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is OrderedDictionary<string, object?>,
            "sequence" => value is string or List<object?> or OrderedDictionary<string, object?>,
            "iterable" => value is string or List<object?> or OrderedDictionary<string, object?>,
            "callable" => value is JinjaCallable,
            "odd" => JinjaValues.ToLong(value) % 2 != 0,
            "even" => JinjaValues.ToLong(value) % 2 == 0,
            "divisibleby" => JinjaValues.ToLong(value) % JinjaValues.ToLong(First()) == 0,
            "lower" => value is string s1 && s1 == s1.ToLowerInvariant(),
            "upper" => value is string s2 && s2 == s2.ToUpperInvariant(),
            "eq" or "equalto" or "==" => JinjaValues.PyEquals(value, First()),
            "ne" or "!=" => !JinjaValues.PyEquals(value, First()),
            "lt" or "lessthan" or "<" => Compare("<", value, First(), offset),
            "gt" or "greaterthan" or ">" => Compare(">", value, First(), offset),
            "le" or "<=" => Compare("<=", value, First(), offset),
            "ge" or ">=" => Compare(">=", value, First(), offset),
            "in" => Contains(First(), value, offset),
            "sameas" => value is null ? First() is null : value is bool b ? First() is bool c && b == c : ReferenceEquals(value, First()),
            _ => throw Error($"unsupported test '{name}'", offset),
        };
    }

    internal static string PyStrip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? JinjaLexer.IsSpace : chars.Contains;
        int start = 0, end = s.Length;
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginning();

    private readonly struct StringInfoLength(string s)
    {
        /// <summary>Python's len() counts code points.</summary>
        public int Length { get; } = s.Length - s.Count(char.IsLowSurrogate);
    }
}

/// <summary>The str and dict methods templates call (<c>content.strip()</c>, <c>message.get('x')</c>, <c>d.items()</c>).
/// Mutating methods are absent, as in transformers' immutable sandbox.</summary>
internal static class Methods
{
    public static JinjaCallable? Get(object? target, string name) => target switch
    {
        string s => StringMethod(s, name),
        OrderedDictionary<string, object?> d => DictMethod(d, name),
        _ => null,
    };

    private static object? A(List<object?> args, int i) => i < args.Count ? args[i] : null;

    private static JinjaCallable? StringMethod(string s, string name)
    {
        JinjaCallable Make(Func<List<object?>, object?> body) => new(name, (args, _) => body(args));
        return name switch
        {
            "strip" => Make(a => JinjaRenderer.PyStrip(s, A(a, 0) as string, true, true)),
            "lstrip" => Make(a => JinjaRenderer.PyStrip(s, A(a, 0) as string, true, false)),
            "rstrip" => Make(a => JinjaRenderer.PyStrip(s, A(a, 0) as string, false, true)),
            "upper" => Make(_ => s.ToUpperInvariant()),
            "lower" => Make(_ => s.ToLowerInvariant()),
            "title" => Make(_ => TitleCase(s)),
            "capitalize" => Make(_ => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "startswith" => Make(a => Prefixes(A(a, 0)).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
            "endswith" => Make(a => Prefixes(A(a, 0)).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
            "split" => Make(a => Split(s, A(a, 0) as string, A(a, 1) is { } max ? JinjaValues.ToLong(max) : -1)),
            "rsplit" => Make(a => RSplit(s, A(a, 0) as string, A(a, 1) is { } max ? JinjaValues.ToLong(max) : -1)),
            "splitlines" => Make(_ => s.Split('\n').Select(l => l.TrimEnd('\r')).Cast<object?>().ToList() is var lines && s.EndsWith('\n') ? lines[..^1] : lines),
            "replace" => Make(a => ReplaceCount(s, (string)A(a, 0)!, (string)A(a, 1)!, A(a, 2) is { } count ? JinjaValues.ToLong(count) : -1)),
            "find" => Make(a => (long)s.IndexOf((string)A(a, 0)!, StringComparison.Ordinal)),
            "rfind" => Make(a => (long)s.LastIndexOf((string)A(a, 0)!, StringComparison.Ordinal)),
            "index" => Make(a => s.IndexOf((string)A(a, 0)!, StringComparison.Ordinal) is var i and >= 0 ? (long)i : throw new InvalidOperationException("substring not found")),
            "count" => Make(a => (long)CountOccurrences(s, (string)A(a, 0)!)),
            "join" => Make(a => string.Join(s, ((List<object?>)A(a, 0)!).Select(JinjaValues.ToStr))),
            "isdigit" => Make(_ => s.Length > 0 && s.All(char.IsDigit)),
            "isalpha" => Make(_ => s.Length > 0 && s.All(char.IsLetter)),
            "isalnum" => Make(_ => s.Length > 0 && s.All(char.IsLetterOrDigit)),
            "isspace" => Make(_ => s.Length > 0 && s.All(JinjaLexer.IsSpace)),
            "islower" => Make(_ => s.Any(char.IsLetter) && s == s.ToLowerInvariant()),
            "isupper" => Make(_ => s.Any(char.IsLetter) && s == s.ToUpperInvariant()),
            _ => null,
        };
    }

    private static string TitleCase(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static IEnumerable<string> Prefixes(object? arg) => arg switch
    {
        string p => [p],
        List<object?> list => list.Select(x => (string)x!),
        _ => throw new InvalidOperationException("startswith/endswith expects a string or tuple of strings"),
    };

    private static List<object?> Split(string s, string? separator, long max)
    {
        if (separator is null)
        {
            var parts = new List<object?>();
            var i = 0;
            while (true)
            {
                while (i < s.Length && JinjaLexer.IsSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && parts.Count == max)
                {
                    parts.Add(JinjaRenderer.PyStrip(s[i..], null, false, true));
                    break;
                }
                var start = i;
                while (i < s.Length && !JinjaLexer.IsSpace(s[i])) i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        if (separator.Length == 0) throw new InvalidOperationException("empty separator");
        return (max < 0 ? s.Split(separator) : s.Split(separator, (int)max + 1)).Cast<object?>().ToList();
    }

    private static List<object?> RSplit(string s, string? separator, long max)
    {
        if (max < 0 || separator is null) return Split(s, separator, max);
        var parts = new List<object?>();
        var end = s.Length;
        while (parts.Count < max)
        {
            var j = s.LastIndexOf(separator, end - 1 < 0 ? 0 : end - 1, StringComparison.Ordinal);
            if (j < 0 || end == 0 || j + separator.Length > end) break;
            parts.Insert(0, s[(j + separator.Length)..end]);
            end = j;
        }
        parts.Insert(0, s[..end]);
        return parts;
    }

    internal static string ReplaceCount(string s, string old, string replacement, long count)
    {
        var sb = new StringBuilder();
        var i = 0;
        for (var n = 0; count < 0 || n < count; n++)
        {
            var j = s.IndexOf(old, i, StringComparison.Ordinal);
            if (j < 0 || old.Length == 0) break;
            sb.Append(s, i, j - i).Append(replacement);
            i = j + old.Length;
        }
        return sb.Append(s, i, s.Length - i).ToString();
    }

    private static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        var count = 0;
        for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    private static JinjaCallable? DictMethod(OrderedDictionary<string, object?> d, string name) => name switch
    {
        "items" => new(name, (_, _) => d.Select(p => (object?)new JinjaTuple([p.Key, p.Value])).ToList()),
        "keys" => new(name, (_, _) => d.Keys.Cast<object?>().ToList()),
        "values" => new(name, (_, _) => d.Values.ToList()),
        "get" => new(name, (args, _) => args.Count > 0 && args[0] is string key && d.TryGetValue(key, out var v) ? v : A(args, 1)),
        _ => null,
    };
}
