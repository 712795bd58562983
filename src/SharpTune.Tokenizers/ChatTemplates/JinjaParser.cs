namespace SharpTune.Tokenizers.ChatTemplates;

internal abstract record Node(int Offset);

internal abstract record Expr(int Offset) : Node(Offset);

internal sealed record TextNode(int Offset, string Text) : Node(Offset);
internal sealed record OutputNode(int Offset, Expr Value) : Node(Offset);
internal sealed record IfNode(int Offset, List<(Expr Test, List<Node> Body)> Branches, List<Node>? Else) : Node(Offset);
internal sealed record ForNode(int Offset, Expr Target, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node(Offset);
internal sealed record SetNode(int Offset, Expr Target, Expr Value) : Node(Offset);
internal sealed record SetBlockNode(int Offset, Expr Target, List<(string Name, List<Expr> Args, List<(string, Expr)> Kwargs, int Offset)> Filters, List<Node> Body) : Node(Offset);
internal sealed record MacroNode(int Offset, string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body) : Node(Offset);
internal sealed record FilterBlockNode(int Offset, List<(string Name, List<Expr> Args, List<(string, Expr)> Kwargs, int Offset)> Filters, List<Node> Body) : Node(Offset);
internal sealed record GenerationNode(int Offset, List<Node> Body) : Node(Offset);
internal sealed record BreakNode(int Offset) : Node(Offset);
internal sealed record ContinueNode(int Offset) : Node(Offset);

internal sealed record ConstExpr(int Offset, object? Value) : Expr(Offset);
internal sealed record NameExpr(int Offset, string Name) : Expr(Offset);
internal sealed record ListExpr(int Offset, List<Expr> Items, bool IsTuple) : Expr(Offset);
internal sealed record DictExpr(int Offset, List<(Expr Key, Expr Value)> Items) : Expr(Offset);
internal sealed record AttributeExpr(int Offset, Expr Target, string Name) : Expr(Offset);
internal sealed record ItemExpr(int Offset, Expr Target, Expr Key) : Expr(Offset);
internal sealed record SliceExpr(int Offset, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Offset);
internal sealed record CallExpr(int Offset, Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record FilterExpr(int Offset, Expr Value, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record TestExpr(int Offset, Expr Value, string Name, List<Expr> Args, bool Negated) : Expr(Offset);
internal sealed record BinaryExpr(int Offset, string Op, Expr Left, Expr Right) : Expr(Offset);
internal sealed record UnaryExpr(int Offset, string Op, Expr Operand) : Expr(Offset);
internal sealed record CompareExpr(int Offset, Expr First, List<(string Op, Expr Operand)> Rest) : Expr(Offset);
internal sealed record ConditionalExpr(int Offset, Expr Test, Expr Then, Expr? Else) : Expr(Offset);

/// <summary>Recursive-descent parser for Jinja2's statements and expressions (precedence as in Jinja2's own parser).</summary>
internal sealed class JinjaParser
{
    private readonly List<JinjaToken> _tokens;
    private readonly string _source;
    private int _i;

    private JinjaParser(List<JinjaToken> tokens, string source)
    {
        _tokens = tokens;
        _source = source;
    }

    public static List<Node> Parse(string source, out string normalized)
    {
        var tokens = JinjaLexer.Tokenize(source, out normalized);
        var parser = new JinjaParser(tokens, normalized);
        var body = parser.ParseBody([], out _);
        return body;
    }

    private JinjaToken Current => _tokens[_i];

    private JinjaException Error(string message, int offset)
    {
        var (line, column) = JinjaLexer.Locate(_source, offset);
        return new JinjaException(message, line, column);
    }

    private JinjaToken Next() => _tokens[_i++];

    private bool IsOp(string op) => Current.Kind == TokenKind.Operator && Current.Value == op;
    private bool IsName(string name) => Current.Kind == TokenKind.Name && Current.Value == name;

    private bool SkipOp(string op)
    {
        if (!IsOp(op)) return false;
        _i++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!IsName(name)) return false;
        _i++;
        return true;
    }

    private JinjaToken ExpectOp(string op) =>
        IsOp(op) ? Next() : throw Error($"expected '{op}' but found {Describe(Current)}", Current.Offset);

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name)
            throw Error($"expected a name but found {Describe(Current)}", Current.Offset);
        return Next().Value;
    }

    private void Expect(TokenKind kind, string what)
    {
        if (Current.Kind != kind)
            throw Error($"expected {what} but found {Describe(Current)}", Current.Offset);
        _i++;
    }

    private static string Describe(JinjaToken token) => token.Kind switch
    {
        TokenKind.End => "the end of the template",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VariableEnd => "'}}'",
        TokenKind.String => "a string",
        TokenKind.Text => "text",
        _ => $"'{token.Value}'",
    };

    /// <summary>Parses nodes until a block tag whose keyword is one of <paramref name="endTags"/> (left current).</summary>
    private List<Node> ParseBody(string[] endTags, out string? endTag)
    {
        var nodes = new List<Node>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.End:
                    if (endTags.Length > 0)
                        throw Error($"unexpected end of template; expected {string.Join(" or ", endTags.Select(t => $"'{{% {t} %}}'"))}", token.Offset);
                    endTag = null;
                    return nodes;
                case TokenKind.Text:
                    nodes.Add(new TextNode(token.Offset, token.Value));
                    _i++;
                    break;
                case TokenKind.VariableBegin:
                    _i++;
                    nodes.Add(new OutputNode(token.Offset, ParseTuple()));
                    Expect(TokenKind.VariableEnd, "'}}'");
                    break;
                case TokenKind.BlockBegin:
                    var keyword = _tokens[_i + 1];
                    if (keyword.Kind == TokenKind.Name && endTags.Contains(keyword.Value))
                    {
                        _i += 2;
                        endTag = keyword.Value;
                        return nodes;
                    }
                    _i++;
                    nodes.Add(ParseStatement());
                    break;
                default:
                    throw Error($"unexpected {Describe(token)}", token.Offset);
            }
        }
    }

    private Node ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name)
            throw Error($"expected a statement keyword but found {Describe(token)}", token.Offset);
        _i++;
        switch (token.Value)
        {
            case "if": return ParseIf(token.Offset);
            case "for": return ParseFor(token.Offset);
            case "set": return ParseSet(token.Offset);
            case "macro": return ParseMacro(token.Offset);
            case "filter":
            {
                var filters = ParseFilterChainForBlock();
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(["endfilter"], out _);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new FilterBlockNode(token.Offset, filters, body);
            }
            case "generation":
            {
                Expect(TokenKind.BlockEnd, "'%}'");
                var body = ParseBody(["endgeneration"], out _);
                Expect(TokenKind.BlockEnd, "'%}'");
                return new GenerationNode(token.Offset, body);
            }
            case "break":
                Expect(TokenKind.BlockEnd, "'%}'");
                return new BreakNode(token.Offset);
            case "continue":
                Expect(TokenKind.BlockEnd, "'%}'");
                return new ContinueNode(token.Offset);
            default:
                throw Error($"unsupported statement '{token.Value}' (chat templates support if, for, set, macro, filter, generation, break, continue, raw)", token.Offset);
        }
    }

    private IfNode ParseIf(int offset)
    {
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var test = ParseTuple();
        while (true)
        {
            Expect(TokenKind.BlockEnd, "'%}'");
            var body = ParseBody(["elif", "else", "endif"], out var end);
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseTuple();
                continue;
            }
            if (end == "else")
            {
                Expect(TokenKind.BlockEnd, "'%}'");
                elseBody = ParseBody(["endif"], out _);
            }
            Expect(TokenKind.BlockEnd, "'%}'");
            return new IfNode(offset, branches, elseBody);
        }
    }

    private ForNode ParseFor(int offset)
    {
        var target = ParseAssignTarget();
        if (!SkipName("in"))
            throw Error($"expected 'in' but found {Describe(Current)}", Current.Offset);
        var iterable = ParseTuple(withCondExpr: false);
        Expr? filter = null;
        if (SkipName("if"))
            filter = ParseExpression();
        if (IsName("recursive"))
            throw Error("unsupported: recursive loops", Current.Offset);
        Expect(TokenKind.BlockEnd, "'%}'");
        var body = ParseBody(["endfor", "else"], out var end);
        List<Node>? elseBody = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd, "'%}'");
            elseBody = ParseBody(["endfor"], out _);
        }
        Expect(TokenKind.BlockEnd, "'%}'");
        return new ForNode(offset, target, iterable, filter, body, elseBody);
    }

    /// <summary>A name, <c>a, b</c>, or <c>ns.attr</c> (set only).</summary>
    private Expr ParseAssignTarget(bool allowAttribute = false)
    {
        var start = Current.Offset;
        var items = new List<Expr>();
        do
        {
            if (IsOp(")") || Current.Kind == TokenKind.BlockEnd)
                break;
            var paren = SkipOp("(");
            var offset = Current.Offset;
            Expr item = new NameExpr(offset, ExpectName());
            if (allowAttribute && IsOp("."))
            {
                _i++;
                item = new AttributeExpr(offset, item, ExpectName());
            }
            if (paren)
            {
                var inner = new List<Expr> { item };
                while (SkipOp(","))
                    inner.Add(new NameExpr(Current.Offset, ExpectName()));
                ExpectOp(")");
                item = new ListExpr(offset, inner, true);
            }
            items.Add(item);
        } while (SkipOp(","));
        return items.Count == 1 ? items[0] : new ListExpr(start, items, true);
    }

    private Node ParseSet(int offset)
    {
        var target = ParseAssignTarget(allowAttribute: true);
        if (SkipOp("="))
        {
            var value = ParseTuple();
            Expect(TokenKind.BlockEnd, "'%}'");
            return new SetNode(offset, target, value);
        }
        var filters = IsOp("|") ? ParseFilterChainForBlock(leadingPipe: true) : [];
        Expect(TokenKind.BlockEnd, "'%}'");
        var body = ParseBody(["endset"], out _);
        Expect(TokenKind.BlockEnd, "'%}'");
        return new SetBlockNode(offset, target, filters, body);
    }

    private List<(string, List<Expr>, List<(string, Expr)>, int)> ParseFilterChainForBlock(bool leadingPipe = false)
    {
        var filters = new List<(string, List<Expr>, List<(string, Expr)>, int)>();
        if (leadingPipe) ExpectOp("|");
        do
        {
            var offset = Current.Offset;
            var name = ParseDottedName();
            var (args, kwargs) = IsOp("(") ? ParseCallArguments() : ([], []);
            filters.Add((name, args, kwargs, offset));
        } while (SkipOp("|"));
        return filters;
    }

    private MacroNode ParseMacro(int offset)
    {
        var name = ExpectName();
        ExpectOp("(");
        var parameters = new List<(string, Expr?)>();
        while (!IsOp(")"))
        {
            if (parameters.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            var parameter = ExpectName();
            Expr? defaultValue = SkipOp("=") ? ParseExpression() : null;
            parameters.Add((parameter, defaultValue));
        }
        ExpectOp(")");
        Expect(TokenKind.BlockEnd, "'%}'");
        var body = ParseBody(["endmacro"], out _);
        if (Current.Kind == TokenKind.Name) _i++;
        Expect(TokenKind.BlockEnd, "'%}'");
        return new MacroNode(offset, name, parameters, body);
    }

    /// <summary>Expressions separated by commas form a tuple (as in <c>{% set a = 1, 2 %}</c>).</summary>
    private Expr ParseTuple(bool withCondExpr = true)
    {
        var offset = Current.Offset;
        var first = withCondExpr ? ParseExpression() : ParseOr();
        if (!IsOp(","))
            return first;
        var items = new List<Expr> { first };
        while (SkipOp(","))
        {
            if (Current.Kind is TokenKind.BlockEnd or TokenKind.VariableEnd || IsOp(")"))
                break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
        }
        return new ListExpr(offset, items, true);
    }

    private Expr ParseExpression()
    {
        var expr = ParseOr();
        while (IsName("if"))
        {
            var offset = Next().Offset;
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseExpression() : null;
            expr = new ConditionalExpr(offset, test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr(offset, "or", left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr(offset, "and", left, ParseNot());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            var offset = Next().Offset;
            return new UnaryExpr(offset, "not", ParseNot());
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var offset = Current.Offset;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && Current.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (SkipName("in"))
                rest.Add(("in", ParseMath1()));
            else if (IsName("not") && _tokens[_i + 1] is { Kind: TokenKind.Name, Value: "in" })
            {
                _i += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(offset, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.Kind == TokenKind.Operator && Current.Value is "+" or "-")
        {
            var token = Next();
            left = new BinaryExpr(token.Offset, token.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (IsOp("~"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr(offset, "~", left, ParseMath2());
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            left = new BinaryExpr(token.Offset, token.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary();
        while (IsOp("**"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr(offset, "**", left, ParseUnary());
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        Expr node;
        if (Current.Kind == TokenKind.Operator && Current.Value is "-" or "+")
        {
            var token = Next();
            node = new UnaryExpr(token.Offset, token.Value, ParseUnary(false));
        }
        else
            node = ParsePostfix(ParsePrimary());
        return withFilter ? ParseFilterAndTests(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                _i++;
                return token.Value switch
                {
                    "true" or "True" => new ConstExpr(token.Offset, true),
                    "false" or "False" => new ConstExpr(token.Offset, false),
                    "none" or "None" => new ConstExpr(token.Offset, null),
                    _ => new NameExpr(token.Offset, token.Value),
                };
            case TokenKind.String:
            {
                _i++;
                var text = (string)token.Literal!;
                while (Current.Kind == TokenKind.String)
                    text += (string)Next().Literal!;
                return new ConstExpr(token.Offset, text);
            }
            case TokenKind.Integer or TokenKind.Float:
                _i++;
                return new ConstExpr(token.Offset, token.Literal);
            case TokenKind.Operator when token.Value == "(":
            {
                _i++;
                if (SkipOp(")"))
                    return new ListExpr(token.Offset, [], true);
                var inner = ParseTuple();
                ExpectOp(")");
                return inner;
            }
            case TokenKind.Operator when token.Value == "[":
            {
                _i++;
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("]")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp("]");
                return new ListExpr(token.Offset, items, false);
            }
            case TokenKind.Operator when token.Value == "{":
            {
                _i++;
                var items = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("}")) break;
                    var key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                }
                ExpectOp("}");
                return new DictExpr(token.Offset, items);
            }
            default:
                throw Error($"unexpected {Describe(token)} in expression", token.Offset);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (IsOp("."))
            {
                var offset = Next().Offset;
                if (Current.Kind == TokenKind.Integer)
                    node = new ItemExpr(offset, node, new ConstExpr(Current.Offset, Next().Literal));
                else
                    node = new AttributeExpr(offset, node, ExpectName());
            }
            else if (IsOp("["))
            {
                var offset = Next().Offset;
                node = ParseSubscript(offset, node);
            }
            else if (IsOp("("))
            {
                var offset = Current.Offset;
                var (args, kwargs) = ParseCallArguments();
                node = new CallExpr(offset, node, args, kwargs);
            }
            else return node;
        }
    }

    private Expr ParseSubscript(int offset, Expr target)
    {
        Expr? start = null, stop = null, step = null;
        if (!IsOp(":"))
            start = ParseExpression();
        if (!SkipOp(":"))
        {
            ExpectOp("]");
            return new ItemExpr(offset, target, start!);
        }
        if (!IsOp("]") && !IsOp(":"))
            stop = ParseExpression();
        if (SkipOp(":") && !IsOp("]"))
            step = ParseExpression();
        ExpectOp("]");
        return new SliceExpr(offset, target, start, stop, step);
    }

    private (List<Expr>, List<(string, Expr)>) ParseCallArguments()
    {
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (args.Count + kwargs.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            if (Current.Kind == TokenKind.Name && _tokens[_i + 1] is { Kind: TokenKind.Operator, Value: "=" })
            {
                var name = Next().Value;
                _i++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0)
                    throw Error("positional argument after keyword argument", Current.Offset);
                if (IsOp("*"))
                    throw Error("unsupported: *args in calls", Current.Offset);
                args.Add(ParseExpression());
            }
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    private string ParseDottedName()
    {
        var name = ExpectName();
        while (IsOp(".") && _tokens[_i + 1].Kind == TokenKind.Name)
        {
            _i++;
            name += "." + ExpectName();
        }
        return name;
    }

    private Expr ParseFilterAndTests(Expr node)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                _i++;
                var offset = Current.Offset;
                var name = ParseDottedName();
                var (args, kwargs) = IsOp("(") ? ParseCallArguments() : ([], []);
                node = new FilterExpr(offset, node, name, args, kwargs);
            }
            else if (IsName("is"))
            {
                _i++;
                var negated = SkipName("not");
                var offset = Current.Offset;
                var name = ParseDottedName();
                var args = new List<Expr>();
                if (IsOp("("))
                {
                    var (positional, kwargs) = ParseCallArguments();
                    if (kwargs.Count > 0)
                        throw Error("unsupported: keyword arguments to tests", offset);
                    args = positional;
                }
                else if (Current.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Current.Kind == TokenKind.Name && Current.Value is not ("and" or "or" or "else" or "if" or "is" or "in" or "not"))
                         || IsOp("[") || IsOp("{"))
                {
                    // Jinja allows one unparenthesised argument: `x is divisibleby 3`, `x is sameas none`.
                    args.Add(ParsePostfix(ParsePrimary()));
                }
                node = new TestExpr(offset, node, name, args, negated);
            }
            else return node;
        }
    }
}
